/**
 * WAL checkpoints off the main thread. SQLite normally checkpoints inside whichever COMMIT pushes
 * the WAL past `wal_autocheckpoint` pages, and a checkpoint fsyncs the WAL and the database file:
 * on the main thread that stalls every request and worker, and it weighs on every claim and ack
 * (`npm run bench`). So the main connection checkpoints only as a safety net (a WAL of
 * SAFETY_PAGES) and this worker thread, with a connection of its own, runs PASSIVE checkpoints
 * every INTERVAL_MS (200 ms); a PASSIVE checkpoint never waits for or blocks readers and writers.
 *
 * A checkpoint that fails (a full disk: the database file cannot grow to take the WAL's pages)
 * leaves the WAL growing until writes fail too, so it is reported: once when checkpoints start
 * failing (or fail differently), and once when one succeeds again, not on every try.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { PRAGMA } from './queries.js';

/** The main connection's own checkpoint threshold, in pages: only if this thread falls far behind. */
export const SAFETY_PAGES = 20_000;
/** How often the thread checkpoints. */
const INTERVAL_MS = 200;

// Plain CommonJS run with `eval`, so the same code works from src/ (tests) and dist/.
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.modulePath);
const db = new Database(workerData.path, { timeout: 5000 });
db.pragma(workerData.pragma.synchronous);
let failing = null;
let failures = 0;
const timer = setInterval(() => {
  try {
    db.pragma(workerData.pragma.checkpointPassive);
    if (failing !== null) parentPort.postMessage({ kind: 'recovered', failures });
    failing = null;
    failures = 0;
  } catch (err) {
    const message = String(err && err.message);
    failures++;
    if (message !== failing) parentPort.postMessage({ kind: 'failed', message });
    failing = message;
  }
}, workerData.intervalMs);
`;

/** What the checkpoint thread reports: a (new) failure, or success after `failures` failures. */
export type CheckpointReport = { kind: 'failed'; message: string } | { kind: 'recovered'; failures: number };

export class Checkpointer {
  private readonly worker: Worker;

  constructor(path: string, onReport: (report: CheckpointReport) => void) {
    const modulePath = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: {
        path,
        modulePath,
        intervalMs: INTERVAL_MS,
        // The statements travel as data: the thread's source is plain text and imports nothing.
        pragma: { synchronous: PRAGMA.synchronous, checkpointPassive: PRAGMA.checkpointPassive },
      },
    });
    this.worker.on('message', onReport);
    // The thread itself died (it could not open the file): no more checkpoints from it.
    this.worker.on('error', (err) =>
      onReport({ kind: 'failed', message: `checkpoint thread: ${err.message}` }),
    );
    // Never keeps the process alive on its own.
    this.worker.unref();
  }

  async close(): Promise<void> {
    // Stopping mid-checkpoint is safe: SQLite treats it like a crash of that connection.
    await this.worker.terminate();
  }
}
