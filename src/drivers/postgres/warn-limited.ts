/**
 * Warnings about the connection to PostgreSQL, at most one per `intervalMs` for each message: a
 * server that is down makes the pools and the LISTEN reconnect loop fail many times a second, and
 * one line per failure would bury everything else. The next line says how many were left out.
 */

/** The part of a pino logger the driver uses. */
export interface DriverLogger {
  warn(obj: object, msg: string): void;
}

export class LimitedWarn {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: DriverLogger | undefined,
    private readonly intervalMs = 5000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(err: unknown, msg: string, fields: object = {}): void {
    if (!this.logger) return;
    const seen = this.last.get(msg);
    const at = this.now();
    if (seen && at - seen.at < this.intervalMs) {
      seen.suppressed++;
      return;
    }
    const suppressed = seen?.suppressed ?? 0;
    this.last.set(msg, { at, suppressed: 0 });
    this.logger.warn({ err, ...fields, ...(suppressed > 0 ? { suppressed } : {}) }, msg);
  }
}
