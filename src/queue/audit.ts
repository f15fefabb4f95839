/**
 * The audit log (docs/security.md): one entry per call of an operator route (scope operate or
 * admin: retry, cancel, pause, resume, schedule run, bulk operations), written by the API's
 * audit hook once the answer is known, and read newest first at GET /audit. Enqueues are not
 * audited: they are the queue's traffic, not an operator's act, and each task records its own
 * creation. Entries older than `--audit-retention` are pruned by the pruner (worker/pruner.ts).
 */
import { QueueError } from '../core/errors.js';
import type { JsonObject } from '../core/task.js';
import type { AuditRecord, NewAuditEntry, QueueDriver } from '../drivers/driver.js';

export type { AuditRecord, NewAuditEntry };

/** What a route adds to its own entry (`request.audit`); the hook fills in the rest. */
export interface AuditNote {
  /** Overrides the route's declared action (POST /tasks/bulk says `bulk.delete`). */
  action?: string;
  /** Overrides the route's first parameter as the target (a bulk operation's id). */
  target?: string | null;
  detail?: JsonObject;
  /**
   * The answer changed nothing (a bulk dry run's count): a read, not recorded unless refused,
   * like GET routes. The dashboard counts on every "select all", which would fill the log.
   */
  changedNothing?: boolean;
}

export interface AuditPage {
  entries: AuditRecord[];
  nextCursor: string | null;
}

export interface AuditQuery {
  token?: string;
  action?: string;
  cursor?: string;
  limit: number;
}

// Audit cursors are their own kind (`a` before the seq), so a task list's cursor is refused here.
const encodeCursor = (seq: number) => Buffer.from(`a${seq}`).toString('base64url');

function decodeCursor(cursor: string): number {
  const match = /^a(\d{1,16})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!match)
    throw new QueueError('TQ_ERR_VALIDATION', 'querystring/cursor is not a cursor this service returned');
  return Number(match[1]);
}

export class AuditLog {
  constructor(private readonly driver: QueueDriver) {}

  /** Appends an entry; resolves once it is durable. */
  async record(entry: NewAuditEntry): Promise<void> {
    await this.driver.insertAuditEntry({ entry });
  }

  /** A page of entries, newest first. */
  async list(query: AuditQuery): Promise<AuditPage> {
    const beforeSeq = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    // One extra row tells whether another page exists.
    const rows = await this.driver.listAuditEntries({
      beforeSeq,
      token: query.token,
      action: query.action,
      limit: query.limit + 1,
    });
    const entries = rows.slice(0, query.limit);
    const last = entries[entries.length - 1];
    return { entries, nextCursor: rows.length > query.limit && last ? encodeCursor(last.seq) : null };
  }
}
