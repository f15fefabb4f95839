/** SQLite task ids: UUID v4 values that encode seq (task-ids.ts), and databases from before them. */
import Database from 'better-sqlite3';
import { randomBytes, randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/drivers/sqlite/migrations.js';
import { SqliteDriver } from '../../src/drivers/sqlite/sqlite-driver.js';
import { TaskIdCodec } from '../../src/drivers/task-ids.js';
import { cleanupAfterEach } from '../support/cleanup.js';
import { newTask } from '../support/factories.js';
import { tempDbPath } from '../support/temp.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const defer = cleanupAfterEach();

it('encodes every seq as a distinct UUID v4 that decodes back to it', () => {
  const codec = new TaskIdCodec(randomBytes(16));
  const seqs = [
    1,
    2,
    3,
    1000,
    2 ** 31,
    Number.MAX_SAFE_INTEGER,
    ...Array.from({ length: 5000 }, (_, i) => i + 10_000),
  ];
  const ids = seqs.map((seq) => codec.encode(seq));
  expect(new Set(ids).size).toBe(seqs.length);
  ids.forEach((id, i) => {
    expect(id).toMatch(UUID_V4);
    expect(codec.decode(id)).toEqual([seqs[i]]);
  });
});

it('looks random: neighbouring seqs share no prefix, and each hex digit is spread evenly', () => {
  const codec = new TaskIdCodec(randomBytes(16));
  const ids = Array.from({ length: 20_000 }, (_, i) => codec.encode(i + 1));
  // A counter that leaked through would show up as shared leading digits of neighbours.
  const sharedPrefix = ids.slice(1).filter((id, i) => id.slice(0, 4) === ids[i]!.slice(0, 4)).length;
  expect(sharedPrefix).toBeLessThan(10); // about 20,000 / 65,536 by chance
  const firstDigits = new Map<string, number>();
  for (const id of ids) firstDigits.set(id[0]!, (firstDigits.get(id[0]!) ?? 0) + 1);
  expect(firstDigits.size).toBe(16);
  for (const count of firstDigits.values()) expect(Math.abs(count - 1250)).toBeLessThan(250);
});

it('decodes ids it did not make, or made under another key, to nothing', () => {
  const codec = new TaskIdCodec(randomBytes(16));
  const other = new TaskIdCodec(randomBytes(16));
  for (let i = 0; i < 200; i++) {
    expect(codec.decode(randomUUID())).toEqual([]);
    expect(codec.decode(other.encode(i + 1))).toEqual([]);
  }
  expect(codec.decode('nope')).toEqual([]);
  expect(codec.decode('00000000-0000-1000-8000-000000000000')).toEqual([]); // not version 4
});

it('keeps finding tasks whose random ids were issued before migration 0003', async () => {
  const db = tempDbPath();
  defer(db.cleanup);
  // A database as version 2 left it, holding three tasks with random ids.
  const old = new Database(db.path);
  old.exec(`CREATE TABLE taskq_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  for (const m of MIGRATIONS.filter((m) => m.version <= 2)) {
    old.exec(m.sql);
    old.prepare('INSERT INTO taskq_migrations VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
  }
  const legacyIds = [randomUUID(), randomUUID(), randomUUID()];
  const insert = old.prepare(`INSERT INTO tasks (id, action, data, status, run_at, max_attempts, created_at)
                              VALUES (?, 'noop', '{}', ?, 0, 3, 0)`);
  insert.run(legacyIds[0], 'queued');
  insert.run(legacyIds[1], 'failed');
  insert.run(legacyIds[2], 'completed');
  old.close();

  const driver = new SqliteDriver({ path: db.path });
  defer(() => driver.close());
  expect((await driver.migrate()).applied).toContain('0003_ids_from_seq');
  for (const id of legacyIds) expect((await driver.getTask({ id }))?.id).toBe(id);
  expect((await driver.cancelTask({ id: legacyIds[0]!, now: 1 })).outcome).toBe('cancelled');
  expect((await driver.retryTask({ id: legacyIds[1]!, now: 1 })).outcome).toBe('requeued');
  // New tasks continue the sequence, with ids of the new kind.
  const [fresh] = await driver.insertTasks({ tasks: [newTask()], now: 1 });
  expect(fresh!.task.seq).toBe(4);
  expect((await driver.getTask({ id: fresh!.task.id }))?.seq).toBe(4);
  expect((await driver.listTasks({ limit: 10 })).map((t) => t.id)).toEqual([
    fresh!.task.id,
    ...legacyIds.reverse(),
  ]);
});

it('answers a clear error when used on a database that was never migrated', async () => {
  const db = tempDbPath();
  defer(db.cleanup);
  const driver = new SqliteDriver({ path: db.path });
  defer(() => driver.close());
  await expect(driver.getTask({ id: randomUUID() })).rejects.toThrow(/not migrated/);
});
