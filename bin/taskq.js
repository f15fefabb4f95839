#!/usr/bin/env node
// The `taskq` command: runs the compiled CLI (built by `npm install` through the prepare script).
import('../dist/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli/main.js')) {
    console.error('taskq: not built yet; run `npm install` (or `npm run build`) in the taskq folder first');
    process.exit(1);
  }
  throw err;
});
