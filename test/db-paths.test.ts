/**
 * Unusable `--db` values: `taskq migrate`, `run` and `prune` each end within 2 s (PostgreSQL: within
 * its connect timeout) with one line on stderr that names the database and says why, and a
 * non-zero exit, without creating anything on the way (no folder under a bad path, no -journal
 * beside /dev/null, no database under /dev). Each case spawns the built CLI and times it.
 *
 * Tests run as root here, and permission bits deny root nothing: the no-permission cases run the
 * CLI as `nobody`, and the read-only cases use a tmpfs this file mounts read-only (skipped, with
 * one printed line, where mounting is not allowed).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteDriver } from '../src/drivers/sqlite/sqlite-driver.js';
import { postgresTestUrl } from './support/postgres.js';
import { startCli, TASKQ_BIN } from './support/process.js';
import { tempDir } from './support/temp.js';

/**
 * 2 s beyond what starting the CLI at all costs on this machine (`taskq --help`, timed in
 * beforeAll): on a slow shared VM the start alone neared 2 s, and the bound is about the failure
 * being fast, not about node's start-up.
 */
let limitMs = 2000;
const COMMANDS: Record<string, string[]> = {
  migrate: ['migrate'],
  run: ['run', '--port', '0', '--host', '127.0.0.1'],
  prune: ['prune', '--older-than', '1d'],
};

interface Outcome {
  code: number | null;
  stderr: string;
  ms: number;
}

const root = tempDir('taskq-db-paths-');
chmodSync(root.dir, 0o755); // `nobody` must reach the folders below
beforeAll(async () => {
  limitMs = 2000 + (await timedCli(['--help'])).ms;
});

/** Runs the CLI in `root` and times it; a hang is killed at 10 s and shows as a slow failure. */
function timedCli(args: string[], uid?: number): Promise<Outcome> {
  const started = performance.now();
  const child = spawn(process.execPath, [TASKQ_BIN, ...args], {
    cwd: root.dir,
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stderr, ms: performance.now() - started });
    }),
  );
}

async function expectFastFailure(
  command: string,
  db: string,
  reason: RegExp,
  options: { uid?: number; limitMs?: number; names?: string } = {},
): Promise<void> {
  const out = await timedCli([...(COMMANDS[command] as string[]), '--db', db], options.uid);
  const context = `taskq ${command} --db ${db.slice(0, 80)}: exit ${out.code} after ${Math.round(out.ms)} ms\n${out.stderr}`;
  expect(out.code, context).not.toBe(0);
  expect(out.code, context).not.toBeNull(); // null: killed, it hung
  const lines = out.stderr.trimEnd().split('\n');
  expect(lines, context).toHaveLength(1);
  expect(lines[0], context).toMatch(/^taskq: /);
  expect(lines[0], context).toContain(options.names ?? db);
  expect(lines[0], context).toMatch(reason);
  expect(out.ms, context).toBeLessThan(options.limitMs ?? limitMs);
}

/** Mounts a 1 MiB tmpfs on `dir`; false (after one printed line) where that is not allowed. */
function mountTmpfs(dir: string, options: string): boolean {
  mkdirSync(dir, { recursive: true });
  const result = spawnSync('mount', ['-t', 'tmpfs', '-o', `${options},size=1m`, 'tmpfs', dir], {
    encoding: 'utf8',
  });
  if (result.status === 0) return true;
  console.log(
    `db-paths: read-only mount cases skipped (mount: ${String(result.stderr || result.error).trim()})`,
  );
  return false;
}

// Read-only mounts: an empty one, and one holding a migrated database with and without its
// -wal/-shm beside it (with them, SQLite used to open it read-only and `run` served on).
const readOnly = join(root.dir, 'ro');
const readOnlyDb = join(root.dir, 'ro-db');
const mounted = mountTmpfs(readOnly, 'ro') && mountTmpfs(readOnlyDb, 'rw');
if (mounted) {
  for (const name of ['bare.db', 'sidecars.db']) {
    const driver = new SqliteDriver({ path: join(readOnlyDb, name) });
    await driver.migrate();
    await driver.close();
  }
  writeFileSync(join(readOnlyDb, 'sidecars.db-wal'), '');
  writeFileSync(join(readOnlyDb, 'sidecars.db-shm'), '');
  spawnSync('mount', ['-o', 'remount,ro', readOnlyDb]);
}

const file = join(root.dir, 'plain-file');
writeFileSync(file, 'not a folder');
const folder = join(root.dir, 'a-folder');
mkdirSync(folder);
const fifo = join(root.dir, 'a-fifo');
spawnSync('mkfifo', [fifo]);
// For `nobody`: a folder it cannot write, and a database file it cannot write in one it can.
const locked = join(root.dir, 'locked');
mkdirSync(locked, { mode: 0o555 });
const open = join(root.dir, 'open');
mkdirSync(open, { mode: 0o777 });
chmodSync(open, 0o777);
const readOnlyFile = join(open, 'read-only.db');
writeFileSync(readOnlyFile, '');
chmodSync(readOnlyFile, 0o444);
const asUser = process.getuid?.() === 0 ? 65534 : undefined;

const longName = join(root.dir, `${'n'.repeat(300)}.db`);
const pastSqliteLimit = join(root.dir, 'deep', 'd'.repeat(200), 'e'.repeat(200), 'f'.repeat(120), 'x.db');
const pastPathMax = join(
  root.dir,
  ...Array.from({ length: 20 }, (_, i) => String(i % 10).repeat(220)),
  'x.db',
);
const inDev = `/dev/taskq-db-paths-${process.pid}.db`;

interface PathCase {
  name: string;
  db: string;
  reason: RegExp;
  uid?: number;
  skip?: boolean;
  /** Must not exist afterwards (checked only when absent before). */
  leaves?: string[];
}

const CASES: PathCase[] = [
  {
    name: 'parent under a file',
    db: join(file, 'sub', 'x.db'),
    reason: /plain-file is a file, not a folder/,
  },
  {
    name: 'a file where a folder should be',
    db: join(file, 'x.db'),
    reason: /plain-file is a file, not a folder/,
  },
  { name: 'a folder as the database file', db: folder, reason: /is a folder, not a database file/ },
  { name: 'a FIFO as the database file', db: fifo, reason: /is a FIFO, not a regular file/ },
  { name: 'no permission on the folder', db: join(locked, 'x.db'), reason: /permission denied/, uid: asUser },
  {
    name: 'parent under a folder without permission',
    db: join(locked, 'sub', 'x.db'),
    reason: /cannot create the folder .*permission denied/,
    uid: asUser,
    leaves: [join(locked, 'sub')],
  },
  { name: 'no permission on the file', db: readOnlyFile, reason: /permission denied/, uid: asUser },
  { name: 'a read-only mount', db: join(readOnly, 'x.db'), reason: /read-only/, skip: !mounted },
  {
    name: 'parent under a read-only mount',
    db: join(readOnly, 'sub', 'x.db'),
    reason: /cannot create the folder .*read-only/,
    skip: !mounted,
  },
  {
    name: 'a database on a read-only mount',
    db: join(readOnlyDb, 'bare.db'),
    reason: /read-only/,
    skip: !mounted,
  },
  {
    name: 'a database with its -wal and -shm on a read-only mount',
    db: join(readOnlyDb, 'sidecars.db'),
    reason: /read-only/,
    skip: !mounted,
  },
  { name: '/proc/self/x.db', db: '/proc/self/x.db', reason: /\bproc\b.*not .*storage/ },
  { name: '/proc/self/status', db: '/proc/self/status', reason: /\bproc\b.*not .*storage/ },
  {
    // stdout is /dev/null here; before, SQLite wrote a database into whatever file it was
    name: '/proc/self/fd/1 (the stdout of the CLI)',
    db: '/proc/self/fd/1',
    reason: /is a (character device|FIFO), not a regular file|\bproc\b.*not .*storage/,
  },
  { name: '/sys/kernel/x.db', db: '/sys/kernel/x.db', reason: /\bsysfs\b.*not .*storage/ },
  { name: '/sys/x/y.db (a folder to create)', db: '/sys/x/y.db', reason: /\bsysfs\b.*not .*storage/ },
  { name: '/dev/null', db: '/dev/null', reason: /character device/, leaves: ['/dev/null-journal'] },
  { name: '/dev/full', db: '/dev/full', reason: /character device/, leaves: ['/dev/full-journal'] },
  { name: 'a new file in /dev', db: inDev, reason: /\bdevtmpfs\b.*not .*storage/, leaves: [inDev] },
  { name: 'a name longer than 255 bytes', db: longName, reason: /is 303 bytes long; names are at most 255/ },
  {
    name: 'a path longer than SQLite accepts',
    db: pastSqliteLimit,
    reason: /bytes long once resolved; SQLite takes at most 504/,
    leaves: [join(root.dir, 'deep')],
  },
  {
    name: 'a path longer than PATH_MAX',
    db: pastPathMax,
    reason: /bytes long once resolved; SQLite takes at most 504/,
    leaves: [join(root.dir, '0'.repeat(220))],
  },
];

afterAll(() => {
  if (mounted) spawnSync('umount', [readOnly, readOnlyDb]);
  root.cleanup();
});

describe.each(Object.keys(COMMANDS))('taskq %s on an unusable SQLite path', (command) => {
  it.each(CASES)('$name: one line, non-zero exit, within 2 s', async (c) => {
    if (c.skip) return;
    const absentBefore = (c.leaves ?? []).filter((p) => !existsSync(p));
    await expectFastFailure(command, c.db, c.reason, { uid: c.uid });
    for (const path of absentBefore) expect(existsSync(path), `${path} was created`).toBe(false);
  });
});

describe('good paths still work', () => {
  it('a missing folder is created with the database', async () => {
    const db = join(root.dir, 'new', 'nested', 'tasks.db');
    const out = await timedCli(['migrate', '--db', db]);
    expect(out.code, out.stderr).toBe(0);
    expect(existsSync(db)).toBe(true);
  });

  it('taskq run opens a new file and serves', async () => {
    const db = join(root.dir, 'served', 'tasks.db');
    const service = await startCli(['--db', db]);
    expect(existsSync(db)).toBe(true);
    service.child.kill('SIGTERM');
    expect(await service.exited).toBe(0);
  });

  it('a relative path (the default ./data/tasks.db) is created in the working folder', async () => {
    const out = await timedCli(['migrate']);
    expect(out.code, out.stderr).toBe(0);
    expect(existsSync(join(root.dir, 'data', 'tasks.db'))).toBe(true);
  });
});

describe('unusable PostgreSQL URLs', () => {
  let closedPort = 0;
  let silent: Server;
  let silentPort = 0;
  const silentSockets = new Set<Socket>();
  beforeAll(async () => {
    // A port that was just free: nothing listens on it.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    closedPort = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    // Accepts connections and never answers: only the connect timeout ends the wait.
    silent = createServer((socket) => {
      silentSockets.add(socket);
      socket.on('close', () => silentSockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentPort = (silent.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const socket of silentSockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  const testUrl = postgresTestUrl();
  const missingDb = () => {
    const url = new URL(testUrl as string);
    url.pathname = '/taskq_no_such_database';
    return url;
  };

  describe.each(Object.keys(COMMANDS))('taskq %s', (command) => {
    it('a closed port', async () => {
      await expectFastFailure(command, `postgres://postgres@127.0.0.1:${closedPort}/test`, /ECONNREFUSED/, {
        names: `127.0.0.1:${closedPort}/test`,
      });
    });

    it('an unknown host', async () => {
      await expectFastFailure(
        command,
        'postgres://postgres@no-such-host.invalid/test',
        /ENOTFOUND|EAI_AGAIN/,
        {
          names: 'no-such-host.invalid/test',
        },
      );
    });

    it('a server that never answers: within the 3 s connect timeout', async () => {
      await expectFastFailure(command, `postgres://postgres@127.0.0.1:${silentPort}/test`, /timeout/, {
        names: `127.0.0.1:${silentPort}/test`,
        limitMs: 3000 + limitMs,
      });
    });

    it.skipIf(testUrl === undefined)('a database that does not exist', async () => {
      const url = missingDb();
      await expectFastFailure(command, url.href, /does not exist/, { names: `${url.host}${url.pathname}` });
    });
  });
});
