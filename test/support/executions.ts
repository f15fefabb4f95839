/** The runs that the fault handlers (test/fixtures/fault-handlers) record: task id and process. */
import { existsSync, readFileSync } from 'node:fs';

export const FAULT_HANDLERS = new URL('../fixtures/fault-handlers/', import.meta.url).pathname;

/** Task id -> the pids of the processes that ran it, one entry per run, in order. */
export function readExecutions(log: string): Map<string, number[]> {
  const runs = new Map<string, number[]>();
  if (!existsSync(log)) return runs;
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    const [id, pid] = line.split(' ');
    if (!id || !pid) continue;
    runs.set(id, [...(runs.get(id) ?? []), Number(pid)]);
  }
  return runs;
}
