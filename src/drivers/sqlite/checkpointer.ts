/**
 * WAL checkpoints off the main thread. SQLite normally checkpoints inside whichever COMMIT pushes
 * the WAL past `wal_autocheckpoint` pages, and a checkpoint fsyncs the WAL and the database file:
 * on the main thread that stalls every request and worker for milliseconds, and measured as half
 * the cost of a claim or an ack. So the main connection checkpoints only as a safety net (a WAL of
 * SAFETY_PAGES) and this worker thread, with a connection of its own, runs PASSIVE checkpoints
 * every `intervalMs`; a PASSIVE checkpoint never waits for or blocks readers and writers.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** The main connection's own checkpoint threshold, in pages: only if this thread falls far behind. */
export const SAFETY_PAGES = 20_000;

// Plain CommonJS run with `eval`, so the same code works from src/ (tests) and dist/.
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.modulePath);
const db = new Database(workerData.path, { timeout: 5000 });
db.pragma('synchronous = NORMAL');
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (err) { parentPort.postMessage(String(err && err.message)); }
}, workerData.intervalMs);
`;

export class Checkpointer {
  private readonly worker: Worker;

  constructor(path: string, intervalMs = 200, onError: (message: string) => void = () => {}) {
    const modulePath = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(THREAD_SOURCE, { eval: true, workerData: { path, modulePath, intervalMs } });
    this.worker.on('message', (message: string) => onError(message));
    this.worker.on('error', (err) => onError(err.message));
    // Never keeps the process alive on its own.
    this.worker.unref();
  }

  async close(): Promise<void> {
    // Stopping mid-checkpoint is safe: SQLite treats it like a crash of that connection.
    await this.worker.terminate();
  }
}
