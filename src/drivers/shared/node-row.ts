/**
 * The taskq_nodes table (migration 0009) as both drivers read it; only the JSON column comes back
 * in each driver's own type (text in SQLite, parsed in PostgreSQL).
 */
import type { JsonValue } from '../../core/task.js';
import type { NodeInfo, NodeRecord } from '../driver.js';

export interface NodeRow<Json> {
  id: string;
  host: string;
  pid: number;
  role: string;
  version: string;
  started_at: number;
  heartbeat_at: number;
  heartbeat_ms: number;
  concurrency: number;
  running: number;
  buffered: number;
  tasks: Json;
  stopped_at: number | null;
}

const ROLES: readonly NodeInfo['role'][] = ['all', 'api', 'worker'];
const roleOf = (role: string): NodeInfo['role'] => ROLES.find((r) => r === role) ?? 'all';

export function toNodeRecord<Json>(row: NodeRow<Json>, json: (value: Json) => JsonValue): NodeRecord {
  const tasks = json(row.tasks);
  return {
    id: row.id,
    host: row.host,
    pid: row.pid,
    role: roleOf(row.role),
    version: row.version,
    startedAt: row.started_at,
    heartbeatAt: row.heartbeat_at,
    heartbeatMs: row.heartbeat_ms,
    concurrency: row.concurrency,
    running: row.running,
    buffered: row.buffered,
    tasks: Array.isArray(tasks) ? tasks.filter((t): t is string => typeof t === 'string') : [],
    stoppedAt: row.stopped_at,
  };
}
