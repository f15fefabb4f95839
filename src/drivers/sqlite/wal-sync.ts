/**
 * Durable commits without blocking the event loop. better-sqlite3 runs on the main thread, and
 * with synchronous=FULL every COMMIT would wait there for an fsync. Instead the connection
 * commits with synchronous=NORMAL (the WAL frames reach the OS, not yet the disk) and the driver
 * then asks this class to fdatasync the WAL file on libuv's thread pool; a caller is answered only
 * after a sync that started after its commit has finished. That is the same bytes FULL would
 * flush, so a commit acknowledged this way survives power loss, while the main thread goes on
 * parsing requests. Concurrent requests share one fdatasync (group commit).
 *
 * Why syncing the WAL through our own descriptor is enough: fdatasync flushes the file, not the
 * descriptor; SQLite only deletes the WAL when the last connection closes (ours is open), and
 * before it rewinds the WAL it checkpoints it into the database file and syncs that file.
 */
import { closeSync, fdatasync, openSync } from 'node:fs';
import { promisify } from 'node:util';

const fdatasyncAsync = promisify(fdatasync);

export class WalSyncer {
  private fd: number | null = null;
  /** Commits that asked to be made durable, counted. */
  private requested = 0;
  /** All commits up to this count are on disk. */
  private synced = 0;
  private running: Promise<void> | null = null;
  /** fdatasync calls made (tests and benchmarks read it). */
  syncs = 0;

  constructor(private readonly walPath: string) {}

  /** Resolves once every commit made before this call is on disk. */
  async sync(): Promise<void> {
    const mine = ++this.requested;
    while (this.synced < mine) {
      this.running ??= this.syncOnce().finally(() => (this.running = null));
      await this.running;
    }
  }

  private async syncOnce(): Promise<void> {
    const covered = this.requested; // every commit counted so far has written its frames
    this.fd ??= openSync(this.walPath, 'r');
    await fdatasyncAsync(this.fd);
    this.syncs++;
    this.synced = Math.max(this.synced, covered);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
