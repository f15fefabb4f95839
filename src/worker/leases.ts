/** A claimed task as the proof of its lease, and giving tasks back to the queue unspent. */
import type { Logger } from 'pino';
import type { TaskRecord } from '../core/task.js';
import type { LeaseRef, QueueDriver } from '../drivers/driver.js';

export function leaseOf(task: TaskRecord, owner: string): LeaseRef {
  return { id: task.id, seq: task.seq, owner, attempt: task.attempts };
}

/** Back to `queued` with the attempt not counted; on failure their leases expire and the rescuer requeues them. */
export async function giveBack(
  driver: QueueDriver,
  owner: string,
  tasks: TaskRecord[],
  logger: Logger,
): Promise<void> {
  if (tasks.length === 0) return;
  try {
    await driver.releaseTasks({ tasks: tasks.map((t) => leaseOf(t, owner)) });
  } catch (err) {
    logger.error({ err }, 'giving tasks back failed; their leases will expire instead');
  }
}
