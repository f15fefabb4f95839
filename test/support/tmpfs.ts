/**
 * A small tmpfs a test mounts, fills and empties again, to see what a full disk does. Needs
 * root and permission to mount (a container may refuse): `mountTmpfs` then returns null and the
 * caller skips.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmdirSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  dir: string;
  unmount: () => void;
}

export function mountTmpfs(sizeMiB: number): Tmpfs | { skipped: string } {
  const dir = mkdtempSync(join(tmpdir(), 'taskq-tmpfs-'));
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', dir], {
    encoding: 'utf8',
  });
  if (mount.status !== 0) {
    rmdirSync(dir);
    return { skipped: `cannot mount a tmpfs here: ${(mount.stderr || mount.error?.message || '').trim()}` };
  }
  return {
    dir,
    unmount: () => {
      // Lazy: a process the test killed may still be closing its files.
      spawnSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Writes `file` until the filesystem has no space left; returns the bytes written. Deleting the
 * file gives the space back.
 */
export function fillUp(file: string): number {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  let written = 0;
  try {
    for (;;) {
      try {
        written += writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
        // The last partial page: fill it byte by byte, so not even a small write fits.
        for (let size = 4096; size >= 1; size >>= 1) {
          try {
            for (;;) written += writeSync(fd, chunk.subarray(0, size));
          } catch {
            // next smaller size
          }
        }
        return written;
      }
    }
  } finally {
    closeSync(fd);
  }
}
