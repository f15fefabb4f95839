import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh folder under the OS temp dir, removed by the returned cleanup. */
export function tempDir(prefix = 'taskq-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A path for a new SQLite file in a fresh temp folder. */
export function tempDbPath(): { path: string; cleanup: () => void } {
  const { dir, cleanup } = tempDir();
  return { path: join(dir, 'tasks.db'), cleanup };
}
