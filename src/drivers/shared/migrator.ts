/**
 * The migration runner both drivers use. Migrations are forward-only and numbered the same way in
 * both drivers (sqlite/migrations.ts, postgres/migrations.ts). Each driver supplies its own lock
 * and transaction: SQLite applies each migration in its own write transaction, PostgreSQL all of
 * them in one transaction under an advisory lock. Either way the version row is inserted before
 * the migration's SQL, in the same transaction, so two processes migrating at once apply each
 * migration exactly once (the second waits for the lock, then finds the version recorded).
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** A database to migrate, through the driver's own lock and transactions. */
export interface MigrationTarget {
  /** Creates the table of applied versions if it is missing. */
  prepare(): Promise<void>;
  /**
   * In one transaction under the migration lock: if `migration.version` is not recorded, records
   * it, then runs `migration.sql`. Resolves true when it applied the migration.
   */
  applyOnce(migration: Migration): Promise<boolean>;
  /** The highest version recorded, 0 for none. */
  currentVersion(): Promise<number>;
}

export interface MigrationRun {
  applied: string[];
  current: number;
}

/**
 * Applies, in order, the migrations the target has not recorded yet. `onApplied` hears of each
 * once `applyOnce` resolves: pass it only where that means committed (one transaction each).
 */
export async function runMigrations(
  migrations: readonly Migration[],
  target: MigrationTarget,
  onApplied?: (name: string) => void,
): Promise<MigrationRun> {
  await target.prepare();
  const applied: string[] = [];
  for (const migration of migrations) {
    if (!(await target.applyOnce(migration))) continue;
    applied.push(migration.name);
    onApplied?.(migration.name);
  }
  return { applied, current: await target.currentVersion() };
}
