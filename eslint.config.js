// Lint: recommended rules plus type-aware checks that catch floating promises in a queue runtime.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Layers: each folder of src/ imports only the folders it lists (and packages). Imports point down
 * `core <- drivers <- queue <- worker | api | dashboard | cli`. handlers/ sits beside drivers/,
 * above core/ only: the queue reads each action's defaults from it and the worker runs it.
 * Composition (opening a driver, building queue, pool and app together) happens only in src/cli/
 * and src/service.ts, which are therefore not listed; nor are index.ts and logger.ts.
 * test/layers.test.ts proves the rule fires.
 */
const LAYERS = {
  core: [],
  drivers: ['core'],
  handlers: ['core'],
  queue: ['core', 'drivers', 'handlers'],
  worker: ['core', 'drivers', 'handlers', 'queue'],
  api: ['core', 'queue'],
  client: ['core', 'api'],
};
const SRC_FOLDERS = ['core', 'drivers', 'handlers', 'queue', 'worker', 'api', 'dashboard', 'cli', 'client'];
const layerRules = Object.entries(LAYERS).map(([layer, allowed]) => {
  const denied = SRC_FOLDERS.filter((f) => f !== layer && !allowed.includes(f));
  return {
    files: [`src/${layer}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              // A relative path up out of this folder into a denied one, or to a top-level module.
              regex: `^(\\.\\./)+(${denied.join('|')})/|^(\\.\\./)+(service|index|logger)\\.js$`,
              message: `src/${layer}/ may import only ${allowed.length ? allowed.map((f) => `${f}/`).join(', ') : 'itself'} (layers: eslint.config.js)`,
            },
          ],
        },
      ],
    },
  };
});

export default tseslint.config(
  { ignores: ['dist/**', '.bench-build/**', '.probe/**', 'node_modules/**', 'data/**'] },
  js.configs.recommended,
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly', URL: 'readonly' },
    },
  },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { project: './tsconfig.check.json' } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  ...layerRules,
  {
    // The dashboard's browser scripts: ES modules (docs.js is a classic script). tsc with lib DOM
    // checks their names and JSDoc types (tsconfig.dashboard.json), so no-undef would only need a
    // globals list.
    files: ['src/dashboard/static/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      parserOptions: { project: './tsconfig.dashboard.json' },
    },
    rules: {
      'no-undef': 'off',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { varsIgnorePattern: '^_', argsIgnorePattern: '^_' }],
    },
  },
  { files: ['src/dashboard/static/docs.js'], languageOptions: { sourceType: 'script' } },
);
