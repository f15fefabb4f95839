/** Public exports for embedding taskq and writing handlers. */
export { defineHandler } from './handlers/handler.js';
export type { HandlerContext, HandlerOptions, HandlerTask, TaskHandler } from './handlers/handler.js';
export { PermanentFailure, QueueError } from './core/errors.js';
export type { TaskStatus, JsonValue, JsonObject } from './core/task.js';
export type { TaskView } from './api/schemas.js';
export { resolveConfig } from './core/config.js';
export type { Config } from './core/config.js';
export { TaskqNode } from './service.js';
export { createLogger } from './logger.js';
