/**
 * Filters at scale (opt-in: `--only filters` or `--filters`): bench/filters-at-scale.ts in a
 * child process on a table of `--filter-rows` tasks (1,000,000 by default), on SQLite (a temp
 * file) and, with `--db postgres://...`, on PostgreSQL too: the server time of the first page,
 * each filter of the grammar and the bulk dry runs (docs/benchmarks.md, "Filters at scale").
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPostgresUrl } from '../../src/core/config.js';
import type { BenchOptions } from '../lib/options.js';
import { benchScript, startChild } from '../lib/proc.js';

export interface FilterRow {
  name: string;
  p50: number;
  p99: number;
  max: number;
  rows: number | null;
  scans: boolean;
}
export interface FiltersResult {
  rows: number;
  samples: number;
  db: string;
  results: FilterRow[];
}

async function runOne(db: string, rows: number, out: string): Promise<FiltersResult> {
  const child = startChild([
    ...benchScript('bench/filters-at-scale.ts'),
    '--db',
    db,
    '--rows',
    String(rows),
    '--json',
    out,
  ]);
  const code = await child.exited;
  let result: FiltersResult;
  try {
    result = JSON.parse(readFileSync(out, 'utf8')) as FiltersResult;
  } catch {
    throw new Error(`filters-at-scale on ${db} gave no result (exit code ${code})`);
  }
  const slow = result.results.filter((r) => r.p50 >= 50).map((r) => r.name);
  if (slow.length > 0) throw new Error(`p50 of 50 ms or more on ${result.db}: ${slow.join(', ')}`);
  return result;
}

export async function runFilters(opts: BenchOptions): Promise<FiltersResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'taskq-filters-'));
  try {
    const out: FiltersResult[] = [
      await runOne(join(dir, 'filters.db'), opts.filterRows, join(dir, 'sqlite.json')),
    ];
    if (opts.db && isPostgresUrl(opts.db))
      out.push(await runOne(opts.db, opts.filterRows, join(dir, 'pg.json')));
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
