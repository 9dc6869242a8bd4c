/** The rows of the handler micro-benchmark: who answers `POST /orders`, on what. */

export const LAYER_NAMES = [
  'bare',
  'sqlite',
  'postgres',
  'redis',
  'express-bare',
  'express-sqlite',
  'fetch-bare',
  'fetch-sqlite',
  'node-idempotency-memory',
  'node-idempotency-redis',
  'powertools-redis',
] as const

export type Layer = (typeof LAYER_NAMES)[number]

export interface LayerInfo {
  /** The row's name in the table. */
  readonly title: string
  readonly family: 'fastify' | 'express' | 'fetch'
  /** Ours (this project's layer), a peer, or no layer at all. */
  readonly kind: 'bare' | 'ours' | 'peer'
  /** The layer this row's ratio is taken against (its framework, bare). */
  readonly baseline: Layer
  /** Services the layer needs. */
  readonly needs: readonly ('postgres' | 'redis')[]
  /** The status a mismatched key answers with (the peers differ). */
  readonly mismatchStatus?: number
  /** Modules that must be importable for the row to run (some are still being written). */
  readonly requires?: readonly string[]
}

export const LAYERS: Readonly<Record<Layer, LayerInfo>> = {
  bare: { title: 'bare Fastify', family: 'fastify', kind: 'bare', baseline: 'bare', needs: [] },
  sqlite: {
    title: 'ticksupply, SQLite',
    family: 'fastify',
    kind: 'ours',
    baseline: 'bare',
    needs: [],
    mismatchStatus: 409,
  },
  postgres: {
    title: 'ticksupply, PostgreSQL',
    family: 'fastify',
    kind: 'ours',
    baseline: 'bare',
    needs: ['postgres'],
    mismatchStatus: 409,
  },
  redis: {
    title: 'ticksupply, Redis',
    family: 'fastify',
    kind: 'ours',
    baseline: 'bare',
    needs: ['redis'],
    mismatchStatus: 409,
    requires: ['@ticksupply/idempotency/stores/redis', 'redis'],
  },
  'express-bare': {
    title: 'bare Express',
    family: 'express',
    kind: 'bare',
    baseline: 'express-bare',
    needs: [],
    requires: ['express'],
  },
  'express-sqlite': {
    title: 'ticksupply Express adapter, SQLite',
    family: 'express',
    kind: 'ours',
    baseline: 'express-bare',
    needs: [],
    mismatchStatus: 409,
    requires: ['express', '@ticksupply/idempotency/express'],
  },
  'fetch-bare': {
    title: 'bare fetch handler (node:http)',
    family: 'fetch',
    kind: 'bare',
    baseline: 'fetch-bare',
    needs: [],
  },
  'fetch-sqlite': {
    title: 'ticksupply fetch adapter, SQLite',
    family: 'fetch',
    kind: 'ours',
    baseline: 'fetch-bare',
    needs: [],
    mismatchStatus: 409,
    requires: ['@ticksupply/idempotency/fetch'],
  },
  'node-idempotency-memory': {
    title: '@node-idempotency, memory',
    family: 'fastify',
    kind: 'peer',
    baseline: 'bare',
    needs: [],
    mismatchStatus: 422,
  },
  'node-idempotency-redis': {
    title: '@node-idempotency, Redis',
    family: 'fastify',
    kind: 'peer',
    baseline: 'bare',
    needs: ['redis'],
    mismatchStatus: 422,
  },
  'powertools-redis': {
    title: '@aws-lambda-powertools/idempotency, Redis',
    family: 'fastify',
    kind: 'peer',
    baseline: 'bare',
    needs: ['redis'],
    mismatchStatus: 409,
  },
}

export function isLayer(name: string): name is Layer {
  return (LAYER_NAMES as readonly string[]).includes(name)
}
