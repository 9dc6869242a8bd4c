// @ts-check
import js from '@eslint/js'
import globals from 'globals'
import tseslint from 'typescript-eslint'

const driversAndFrameworks = [
  'fastify',
  'fastify-plugin',
  'express',
  'better-sqlite3',
  'pg',
  'postgres',
  'redis',
  'ioredis',
  'node:http',
  'node:https',
  'node:net',
  'http',
]

/** Import patterns that reach each server layer from anywhere below `src/`. */
const SERVER_LAYER_PATTERNS = {
  // config.ts is not among them: a leaf of settings that every layer may read.
  app: ['**/app.js', '**/main.js', '**/keys-cli.js'],
  routes: ['**/routes/**'],
  http: ['**/http/**'],
  domain: ['**/domain/**'],
}

/**
 * @param {{ layer: string, files: string[], above: (keyof typeof SERVER_LAYER_PATTERNS)[],
 *   alsoForbidden?: string[] }[]} layers
 */
function serverLayers(layers) {
  return layers.map(({ layer, files, above, alsoForbidden = [] }) => ({
    files,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@ticksupply/idempotency/src/**', '**/idempotency/src/**'],
              message: 'use the package entry points',
            },
            ...above.map((upper) => ({
              group: SERVER_LAYER_PATTERNS[upper],
              message: `the server's ${layer} layer imports nothing from ${upper} (app -> routes -> http -> domain -> db)`,
            })),
            ...(alsoForbidden.length === 0
              ? []
              : [{ group: alsoForbidden, message: `the ${layer} layer knows no HTTP framework` }]),
          ],
        },
      ],
    },
  }))
}

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'data/**', 'coverage/**', '.test-runs/**'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        project: ['./tsconfig.test.json', './packages/*/tsconfig.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
    },
  },
  {
    // The engine's core knows no framework, driver, network or store: the dependency direction
    // of the design, enforced.
    files: ['packages/idempotency/src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: driversAndFrameworks.map((name) => ({
            name,
            message: 'core imports no framework, driver or network module',
          })),
          patterns: [
            {
              group: ['../store/**', '../adapters/**', '**/store/**', '**/adapters/**'],
              message: 'core depends on nothing outside core',
            },
          ],
        },
      ],
    },
  },
  {
    // Adapters translate between a framework and the engine: they know no store.
    files: ['packages/idempotency/src/adapters/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/store/**'], message: 'adapters do not know the stores' }] },
      ],
    },
  },
  {
    // What all adapters share, and the fetch adapter (for runtimes without Node's HTTP), know
    // no framework and no Node server either.
    files: [
      'packages/idempotency/src/adapters/idempotency-adapter.ts',
      'packages/idempotency/src/adapters/fetch.ts',
    ],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: driversAndFrameworks.map((name) => ({
            name,
            message: 'the shared adapter core and the fetch adapter import no framework or server',
          })),
          patterns: [{ group: ['**/store/**'], message: 'adapters do not know the stores' }],
        },
      ],
    },
  },
  {
    files: ['packages/idempotency/src/store/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/adapters/**'], message: 'stores do not know the adapters' }] },
      ],
    },
  },
  // The server's layers point one way: app -> routes -> http -> domain -> db. Each layer may
  // import the ones below it, never one above (a later block replaces the rule of an earlier
  // one for its files, so each repeats the entry-point rule).
  ...serverLayers([
    { layer: 'app', files: ['packages/server/src/*.ts'], above: [] },
    { layer: 'routes', files: ['packages/server/src/routes/**/*.ts'], above: ['app'] },
    { layer: 'http', files: ['packages/server/src/http/**/*.ts'], above: ['app', 'routes'] },
    {
      layer: 'domain',
      files: ['packages/server/src/domain/**/*.ts'],
      above: ['app', 'routes', 'http'],
      alsoForbidden: ['fastify', 'fastify-plugin', '@fastify/*'],
    },
    {
      layer: 'db',
      files: ['packages/server/src/db/**/*.ts'],
      above: ['app', 'routes', 'http', 'domain'],
      alsoForbidden: ['fastify', 'fastify-plugin', '@fastify/*'],
    },
  ]),
  {
    // The conformance suite is black-box: it talks HTTP to a server and knows nothing of how
    // one is built. Its example apps (examples/) are where the engine is used.
    files: ['packages/conformance/src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '@ticksupply/idempotency',
                '@ticksupply/idempotency/*',
                '@ticksupply/server',
                '@ticksupply/server/*',
                'fastify',
                '**/idempotency/src/**',
                '**/server/src/**',
              ],
              message: 'the conformance suite is black-box: HTTP only',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: globals.node,
    },
  },
  {
    files: ['**/test/**/*.ts', 'test-support/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
)
