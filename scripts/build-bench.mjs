// Compiles the bench (tsconfig.bench.json) into .bench-build/ and points its copy of src/ at dist/,
// so the bench runs the very build `taskq` ships (one copy of every module, with its static files
// and package.json where dist expects them), not a second compilation of the sources.
import { execFileSync } from 'node:child_process';
import { rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.bench.json'], { stdio: 'inherit' });
const src = new URL('../.bench-build/src', import.meta.url);
rmSync(src, { recursive: true, force: true });
symlinkSync('../dist', src, 'dir');
