/**
 * A throwaway PostgreSQL cluster of a test's own, for the fault suite: a test may stop, restart
 * and cut it without touching the shared server other engineers use. initdb and pg_ctl run as the
 * `postgres` user (PostgreSQL refuses to run as root) on a temp folder that user owns; the
 * server listens on 127.0.0.1 on a free port, with trust auth and fsync off (nothing here has to
 * survive a power loss). `stop()` always leaves nothing running, also when the test failed, and
 * an exit hook stops a cluster the test forgot.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const BIN = '/usr/lib/postgresql/15/bin';
const run = promisify(execFile);

export interface PgCluster {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** Starts the server (it is running when `startPgCluster` resolves). */
  start: () => Promise<void>;
  /** `pg_ctl stop -m fast`: every connection is closed, new ones are refused. */
  stop: () => Promise<void>;
  /** `pg_ctl restart -m fast`. */
  restart: () => Promise<void>;
  /** Terminates the backends whose application_name is LIKE `pattern`; resolves with how many. */
  terminateBackends: (pattern: string) => Promise<number>;
  /** One statement on a connection of its own. */
  query: <R extends pg.QueryResultRow>(sql: string, params?: unknown[]) => Promise<R[]>;
  /** The server log so far (for failure messages). */
  log: () => string;
  /** Stops the server at once and removes its folder; safe to call twice. */
  destroy: () => Promise<void>;
}

/** A TCP port nobody listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const asPostgres = (command: string, args: string[]) =>
  run('runuser', ['-u', 'postgres', '--', join(BIN, command), ...args], { timeout: 60_000 });

/** Creates a cluster in a fresh temp folder and starts it. */
export async function startPgCluster(): Promise<PgCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'taskq-pg-'));
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  chownSync(dir, uid, gid);
  const data = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  let destroyed = false;

  // The last resort if the test process ends without calling destroy (synchronous: 'exit' waits for nothing).
  const onExit = () => {
    try {
      execFileSync(
        'runuser',
        ['-u', 'postgres', '--', join(BIN, 'pg_ctl'), '-D', data, '-m', 'immediate', 'stop'],
        {
          stdio: 'ignore',
        },
      );
    } catch {
      // not running
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);

  const pgCtl = (...args: string[]) => asPostgres('pg_ctl', ['-D', data, '-l', logFile, ...args]);
  const cluster: PgCluster = {
    url,
    port,
    start: async () => {
      await pgCtl('-o', options, '-w', 'start');
    },
    stop: async () => {
      await pgCtl('-m', 'fast', '-w', 'stop');
    },
    restart: async () => {
      await pgCtl('-o', options, '-m', 'fast', '-w', 'restart');
    },
    terminateBackends: async (pattern) => {
      const rows = await cluster.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1 AND pg_terminate_backend(pid)`,
        [pattern],
      );
      return rows.length;
    },
    query: async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = []) => {
      const client = new pg.Client({ connectionString: url, application_name: 'test' });
      await client.connect();
      try {
        return (await client.query<R>(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
    log: () => {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      process.off('exit', onExit);
      await pgCtl('-m', 'immediate', '-w', 'stop').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await asPostgres('initdb', [
      '-D',
      data,
      '-A',
      'trust',
      '-U',
      'postgres',
      '--no-sync',
      '--no-instructions',
    ]);
    await cluster.start();
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}
