/**
 * The cap on event streams (server-sent events) open in one process. A stream holds its socket
 * for as long as the client likes, and a per-task stream re-reads its task on every change, so
 * without a cap any client could hold sockets and reads without end. Past the cap a new stream
 * answers 503 before anything is written; a slot frees when its response closes.
 */
import type { ServerResponse } from 'node:http';
import { QueueError } from '../core/errors.js';

export class StreamSlots {
  private taken = 0;

  constructor(private readonly max: number) {}

  get open(): number {
    return this.taken;
  }

  /** Takes a slot until `response` closes (ended, or the client went away); throws 503 when none is free. */
  take(response: ServerResponse): void {
    if (this.taken >= this.max) {
      throw new QueueError(
        'TQ_ERR_UNAVAILABLE',
        `${this.max} event streams are open, the most this process serves (--max-event-streams); try again later`,
      );
    }
    this.taken++;
    response.once('close', () => this.taken--);
  }
}
