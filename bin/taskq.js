#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=50
// The `taskq` command: runs the compiled CLI (built by `npm install` through the prepare script).
// --max-semi-space-size=4 (MiB): V8's young generation otherwise grows to 3 x 16 MiB under a busy
// worker's allocation rate; at 4 a worker node draining at concurrency 50 stays near 140 MiB RSS
// instead of 165-170, at no measured throughput cost. --heap-growing-percent=50: an api node's
// old space otherwise grew to about 3 x its live size before a full collection (RSS 122 -> 168
// MiB over 60 s of POSTs, all of it garbage); growing by half keeps it near 130 MiB
// (docs/deployment.md). `npm start` passes both too.
import('../dist/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli/main.js')) {
    console.error('taskq: not built yet; run `npm install` (or `npm run build`) in the taskq folder first');
    process.exit(1);
  }
  throw err;
});
