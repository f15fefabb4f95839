/**
 * Every read of the audit log is index-backed, on both drivers: each listing (all, by token, by
 * action, by both) reads its index newest first with no sort, and pruning finds old entries by
 * taskq_audit_log_at. Checked on the plans of a table of 20,000 entries; on PostgreSQL also under
 * generic plans, on a log that one token and one action fill.
 */
import Database from 'better-sqlite3';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { openDriver } from '../src/drivers/open-driver.js';
import { SQL as PG_SQL } from '../src/drivers/postgres/queries.js';
import { SQL as SQLITE_SQL } from '../src/drivers/sqlite/queries.js';
import { cleanupAfterEach } from './support/cleanup.js';
import { dropSchema, postgresSkip, postgresTestUrl, randomSchema, withSchema } from './support/postgres.js';
import { tempDbPath } from './support/temp.js';

const defer = cleanupAfterEach();
const LISTINGS = ['listAudit', 'listAuditByToken', 'listAuditByAction', 'listAuditByTokenAction'] as const;
const ENTRIES = 20_000;

/** A connection to a fresh, migrated schema (dropped after the test), with it as the search path. */
async function migratedPostgres(): Promise<pg.Client> {
  const url = postgresTestUrl() as string;
  const schema = randomSchema();
  defer(() => dropSchema(url, schema));
  const driver = await openDriver({ db: withSchema(url, schema), sync: 'normal', pgPoolSize: 2 });
  await driver.migrate();
  await driver.close();
  const client = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
  await client.connect();
  defer(() => client.end());
  return client;
}

describe('audit log plans', () => {
  it('SQLite reads each page and each prune through an index, without a sort', async () => {
    const db = tempDbPath();
    defer(() => db.cleanup());
    const driver = await openDriver({ db: db.path, sync: 'normal', pgPoolSize: 1 });
    await driver.migrate();
    await driver.close();
    const sqlite = new Database(db.path);
    defer(() => sqlite.close());
    sqlite.exec(`
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ENTRIES})
      INSERT INTO taskq_audit_log (at, token, method, route, action, target, detail, status)
      SELECT i, 'token-' || (i % 20), 'POST', '/x', 'action-' || (i % 7), NULL, NULL, 200 FROM n;
      ANALYZE;`);
    const params = { beforeSeq: 10_000, limit: 25, token: 'token-3', action: 'action-2', before: 500 };
    for (const name of [...LISTINGS, 'pruneAudit'] as const) {
      const sql = SQLITE_SQL[name];
      const used = Object.fromEntries(Object.entries(params).filter(([k]) => sql.includes(`@${k}`)));
      const plan = (sqlite.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(used) as { detail: string }[])
        .map((r) => r.detail)
        .join('\n');
      expect(plan, name).toMatch(/USING (INTEGER PRIMARY KEY|(COVERING )?INDEX taskq_audit_log)/);
      expect(plan, name).not.toMatch(/TEMP B-TREE|SCAN taskq_audit_log(?! USING)/);
    }
  });

  it.skipIf(postgresSkip() !== undefined)(
    'PostgreSQL reads each page and each prune through an index, without a sort',
    async () => {
      const client = await migratedPostgres();
      await client.query(`
        INSERT INTO taskq_audit_log (at, token, method, route, action, target, detail, status)
        SELECT i, 'token-' || (i % 20), 'POST', '/x', 'action-' || (i % 7), NULL, NULL, 200
          FROM generate_series(1, ${ENTRIES}) i;
        ANALYZE taskq_audit_log;`);
      const values: Record<(typeof LISTINGS)[number] | 'pruneAudit', unknown[]> = {
        listAudit: [10_000, 25],
        listAuditByToken: [10_000, 25, 'token-3'],
        listAuditByAction: [10_000, 25, 'action-2'],
        listAuditByTokenAction: [10_000, 25, 'token-3', 'action-2'],
        pruneAudit: [500, 500],
      };
      for (const [name, params] of Object.entries(values) as [keyof typeof values, unknown[]][]) {
        const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${PG_SQL[name]}`, params);
        const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
        expect(plan, name).toMatch(/Index (Only )?Scan (Backward )?using taskq_audit_log/);
        expect(plan, name).not.toMatch(/Seq Scan on taskq_audit_log|Sort/);
      }
    },
  );

  it.skipIf(postgresSkip() !== undefined)(
    'PostgreSQL seeks a rare token or action through its index under a generic plan, on a log one token fills',
    async () => {
      const client = await migratedPostgres();
      // Ten old entries of a rare token and action, then one token and one action for the rest.
      await client.query(`
        INSERT INTO taskq_audit_log (at, token, method, route, action, target, detail, status)
        SELECT i, CASE WHEN i <= 10 THEN 'rare' ELSE 'admin' END, 'POST', '/x',
               CASE WHEN i <= 10 THEN 'purge' ELSE 'cancel' END, NULL, NULL, 200
          FROM generate_series(1, ${ENTRIES}) i;
        ANALYZE taskq_audit_log;
        SET plan_cache_mode = force_generic_plan;`);
      const rare: Record<Exclude<(typeof LISTINGS)[number], 'listAudit'>, unknown[]> = {
        listAuditByToken: [ENTRIES + 1, 25, 'rare'],
        listAuditByAction: [ENTRIES + 1, 25, 'purge'],
        listAuditByTokenAction: [ENTRIES + 1, 25, 'rare', 'purge'],
      };
      for (const [name, params] of Object.entries(rare) as [keyof typeof rare, unknown[]][]) {
        await client.query(`PREPARE ${name}_p AS ${PG_SQL[name]}`);
        const args = params.map((p) => (typeof p === 'string' ? `'${p}'` : String(p))).join(', ');
        const { rows } = await client.query<{ 'QUERY PLAN': string }>(
          `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE ${name}_p(${args})`,
        );
        const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
        // The generic plan (parameters, not values) walks the filter's own index: no entry of
        // the common token is read and thrown away.
        expect(plan, name).toMatch(/\$3/);
        expect(plan, name).toMatch(/Index (Only )?Scan (Backward )?using taskq_audit_log_(token|action)/);
        expect(plan, name).not.toMatch(/Rows Removed by Filter|Sort/);
      }
    },
  );
});
