/** Structured JSON logs on stdout (pino). Pipe through `pino-pretty` to read them by eye. */
import { pino, type Logger } from 'pino';
import type { LogLevel } from './core/config.js';

export function createLogger(level: LogLevel, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { service: 'taskq', pid: process.pid, ...bindings } });
}
