// Copies the dashboard's static files next to the compiled routes module (tsc copies only .ts output).
import { cpSync } from 'node:fs';

cpSync(
  new URL('../src/dashboard/static/', import.meta.url),
  new URL('../dist/dashboard/static/', import.meta.url),
  {
    recursive: true,
  },
);
