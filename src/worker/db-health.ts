/**
 * Whether the worker's services can reach the database: claims and heartbeats report here, and
 * the pool's `health()` reads it. Silence is measured on the wall clock (not the pool's injectable
 * clock): it is about how long the process has been cut off, not about queue times.
 */
import type { Logger } from 'pino';

export class DbHealth {
  private lastSuccessAt = Date.now();
  private lastError: Error | null = null;

  constructor(private readonly logger: Logger) {}

  success(): void {
    this.lastSuccessAt = Date.now();
    this.lastError = null;
  }

  error(err: unknown, message: string): void {
    this.lastError = err instanceof Error ? err : new Error(String(err));
    this.logger.error({ err }, message);
  }

  /** The last error when nothing succeeded for longer than `limitMs`, else null. */
  failingFor(limitMs: number): { silentMs: number; error: Error } | null {
    const silentMs = Date.now() - this.lastSuccessAt;
    return this.lastError && silentMs > limitMs ? { silentMs, error: this.lastError } : null;
  }
}
