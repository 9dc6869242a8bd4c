import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createIdempotencyEngine } from '@ticksupply/idempotency'
import type { IdempotencyEngine } from '@ticksupply/idempotency'
import { createSqliteStore, openSqliteConnection } from '@ticksupply/idempotency/stores/sqlite'
import type { SqliteTransaction } from '@ticksupply/idempotency/stores/sqlite'
import type { ExampleVariant } from './example-apps.js'

/** What the example apps publish in `/openapi.json`: the contract's values. */
export const EXAMPLE_POLICY = { ttlMs: 86_400_000, waitMs: 3000 } as const

export interface ExampleEngine {
  readonly engine: IdempotencyEngine<SqliteTransaction>
  readonly close: () => void
}

/**
 * The engine's `waitMs` of the variants that wait wrongly: `answers-409-at-once` answers a
 * duplicate of a running request "still in progress" at once instead of waiting for the
 * original; `waits-5-seconds` waits 5 s where the contract (and the app's own document) says
 * about 3.
 */
const WAIT_OF: Partial<Record<ExampleVariant, number>> = {
  'answers-409-at-once': 0,
  'waits-5-seconds': 5000,
}

/** The real engine on a SQLite store in a fresh temporary file, as every example app uses it. */
export function createExampleEngine(variant: ExampleVariant): ExampleEngine {
  const dir = mkdtempSync(join(tmpdir(), 'conformance-example-'))
  const connection = openSqliteConnection(join(dir, 'idempotency.db'))
  const store = createSqliteStore({ connection })
  const engine = createIdempotencyEngine({
    store,
    ttlMs: EXAMPLE_POLICY.ttlMs,
    waitMs: WAIT_OF[variant] ?? EXAMPLE_POLICY.waitMs,
  })
  return {
    engine,
    close: () => {
      connection.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * The scope to hand the adapter: the account. `compares-raw-keys` adds the `Idempotency-Key`
 * header as sent, so that records are found by the raw text rather than the canonical key (the
 * black-box behaviour of a store keyed `prefix:rawKey`): the four forms and letter cases of one
 * UUID become four keys, while the engine still refuses malformed ones.
 */
export function exampleScope(
  variant: ExampleVariant,
  account: string,
  rawKeyHeader: string | undefined,
  contentType?: string,
): string {
  if (variant === 'compares-raw-keys') return `${account}\n${rawKeyHeader ?? ''}`
  // `keys-by-content-type`: a retry that spells its Content-Type otherwise finds no record.
  if (variant === 'keys-by-content-type') return `${account}\n${contentType ?? ''}`
  return account
}
