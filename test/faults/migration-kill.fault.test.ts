/**
 * `kill -9` of `taskq migrate` in the middle of its work, on a fresh database of each driver: the
 * next `taskq migrate` completes from where the database really is, and `taskq run` works on it.
 *
 * - PostgreSQL runs every migration in one transaction. The test holds an uncommitted table of
 *   the name migration 0003 creates, so the migrator, with 0001 and 0002 done inside its
 *   transaction, provably waits on that lock when it is killed. Its backend then rolls back:
 *   the schema is left empty, and the next run applies all of them.
 * - SQLite commits each migration on its own. The migrator is killed as soon as a reader sees
 *   0001 recorded, which lands inside a later migration (or between two); a race lost to the
 *   migrator finishing first is run again on a fresh file. The next run applies exactly the
 *   migrations not recorded, which fails if a killed one left anything behind.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS as POSTGRES_MIGRATIONS } from '../../src/drivers/postgres/migrations.js';
import { MIGRATIONS as SQLITE_MIGRATIONS } from '../../src/drivers/sqlite/migrations.js';
import { dropSchema, postgresSkip, postgresTestUrl, randomSchema, withSchema } from '../support/postgres.js';
import { runCli, spawnCli, startCli, type RunningService } from '../support/process.js';
import { eventually, http } from '../support/service.js';
import { tempDir } from '../support/temp.js';

// Each driver has its own list, and versions may have gaps while migrations land out of order:
// count them, and name the last.
type MigrationList = readonly { version: number }[];
const latestOf = (migrations: MigrationList) => migrations.at(-1)?.version ?? 0;
const LATEST = latestOf(SQLITE_MIGRATIONS);
let running: RunningService[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const svc of running) svc.child.kill('SIGKILL');
  await Promise.all(running.map((svc) => svc.exited));
  running = [];
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The next `taskq migrate` applies what is missing, then a `taskq run` node completes a task. */
async function migratesAndRuns(db: string, migrations: MigrationList, alreadyApplied: number): Promise<void> {
  const again = runCli(['migrate', '--db', db]);
  expect(again.code, again.stdout + again.stderr).toBe(0);
  const pending = migrations.filter((m) => m.version > alreadyApplied).length;
  expect(again.stdout).toContain(`applied ${pending} migration(s), now at version ${latestOf(migrations)}`);
  const node = await startCli(['--db', db, '--log-level', 'info']);
  running.push(node);
  const posted = await http(`${node.url}/tasks`, {
    method: 'POST',
    json: { action: 'sum', data: { numbers: [2, 3] } },
  });
  expect(posted.status).toBe(202);
  const done = await eventually(async () => {
    const res = await http(`${node.url}/tasks/${posted.body.id}`);
    return res.body.status === 'completed' && res.body;
  });
  expect(done.result).toEqual({ output: 5 });
}

describe('kill -9 in the middle of taskq migrate', () => {
  it('on SQLite: the next migrate applies the rest and run works', async () => {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      const dir = tempDir();
      cleanups.push(dir.cleanup);
      const path = join(dir.dir, 'tasks.db');
      // A fresh, empty database in WAL mode, so this reader never blocks the migrator.
      const reader = new Database(path);
      reader.pragma('journal_mode = WAL');
      const recorded = () => {
        try {
          const row = reader.prepare('SELECT max(version) AS v FROM taskq_migrations').get() as {
            v: number | null;
          };
          return row.v ?? 0;
        } catch {
          return 0; // the migrations table is not created yet
        }
      };
      const migrate = spawnCli(['migrate', '--db', path]);
      // A tight, synchronous watch: the migrator takes about a millisecond per migration.
      const deadline = Date.now() + 15_000;
      while (recorded() < 1 && Date.now() < deadline && migrate.child.exitCode === null);
      migrate.child.kill('SIGKILL');
      const exit = await migrate.exited;
      const applied = recorded();
      reader.close();
      if (exit.signal === 'SIGKILL' && applied >= 1 && applied < LATEST) {
        await migratesAndRuns(path, SQLITE_MIGRATIONS, applied);
        console.log(
          `migration kill (sqlite): killed at version ${applied} of ${LATEST}, attempt ${attempt}, ${Date.now() - started} ms`,
        );
        return;
      }
      // The migrator finished before the kill landed: a fresh file and another try.
      expect(attempt, `never killed mid-way: ${JSON.stringify(exit)} at version ${applied}`).toBeLessThan(20);
    }
  });

  const skip = postgresSkip();
  (skip ? it.skip : it)(
    'on PostgreSQL: the killed transaction leaves nothing; the next migrate applies all',
    async () => {
      const started = Date.now();
      const url = postgresTestUrl() as string;
      const schema = randomSchema();
      cleanups.push(() => dropSchema(url, schema));
      const sql = new pg.Client({ connectionString: url, application_name: 'taskq-test' });
      await sql.connect();
      cleanups.push(() => sql.end());
      await sql.query(`CREATE SCHEMA "${schema}"`);
      // Uncommitted, this name blocks migration 0003's CREATE TABLE task_counts until we roll back.
      const blocker = new pg.Client({ connectionString: url, application_name: 'taskq-test' });
      await blocker.connect();
      cleanups.push(() => blocker.end());
      await blocker.query('BEGIN');
      await blocker.query(`CREATE TABLE "${schema}".task_counts (blocker int)`);

      const db = withSchema(url, schema);
      const migrate = spawnCli(['migrate', '--db', db]);
      const backend = `taskq:${migrate.child.pid}`;
      const waiting = await eventually(async () => {
        const { rows } = await sql.query<{ pid: number; query: string }>(
          `SELECT pid, query FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
          [backend],
        );
        return rows[0];
      });
      expect(waiting.query).toContain('CREATE TABLE task_counts');
      migrate.child.kill('SIGKILL');
      expect((await migrate.exited).signal).toBe('SIGKILL');

      // Released, the orphaned backend finishes its statement, finds its client gone and rolls back.
      await blocker.query('ROLLBACK');
      await eventually(async () => {
        const { rows } = await sql.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1`, [waiting.pid]);
        return rows.length === 0;
      });
      const { rows: tables } = await sql.query<{ name: string }>(
        `SELECT tablename AS name FROM pg_tables WHERE schemaname = $1`,
        [schema],
      );
      expect(tables, 'what the killed migration left').toEqual([]);

      await migratesAndRuns(db, POSTGRES_MIGRATIONS, 0);
      console.log(`migration kill (postgres): ${Date.now() - started} ms`);
    },
  );
});
