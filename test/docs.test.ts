/** The docs that list codes and settings stay in step with the code. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../src/core/config.js';
import { ERROR_CODES } from '../src/core/errors.js';

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');

/** The cells of each markdown table row (padding removed). */
function tableRows(markdown: string): string[][] {
  return markdown
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .map((line) =>
      line
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );
}

describe('docs', () => {
  it('docs/errors.md lists every error code with its HTTP status', () => {
    const rows = tableRows(read('docs/errors.md'));
    for (const [code, status] of Object.entries(ERROR_CODES)) {
      expect(rows.find((r) => r[0] === `\`${code}\``)?.[1], code).toBe(String(status));
    }
  });

  it('the README settings table has a row per setting with its flag, env vars and default', () => {
    const rows = tableRows(read('README.md'));
    for (const spec of Object.values(SETTINGS)) {
      const row = rows.find((r) => r[0] === `\`${spec.flag}\``);
      expect(row, spec.flag).toBeDefined();
      expect(row?.[1]).toBe(spec.env.map((e) => `\`${e}\``).join(', '));
      expect(row?.[2]).toBe(spec.default === undefined ? '(none)' : `\`${spec.default}\``);
    }
  });
});
