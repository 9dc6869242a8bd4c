import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Store, StoreTransaction } from '@ticksupply/idempotency'
import type { Database } from '../db/database.js'
import { MIGRATIONS } from '../db/migrations.js'
import { JSON_TYPE, renderError } from './envelope.js'
import { ERROR_SCHEMA, addComponentSchemas, ref } from './schemas.js'

export interface HealthOptions {
  readonly db: Database
  readonly store: Store<StoreTransaction>
  /** For the store's probe claim; the same values requests use. */
  readonly leaseMs: number
  readonly ttlMs: number
  /** True once the server has begun to shut down: it is alive, but takes no new work. */
  readonly draining: () => boolean
  /**
   * A check that takes longer counts as failed: a database that does not answer is down for
   * the load balancer's purpose.
   * @default 2_000
   */
  readonly timeoutMs?: number
}

/** `ok`, or what failed, in a few words. */
type CheckResult = string

export interface Readiness {
  readonly ready: boolean
  readonly checks: { readonly database: CheckResult; readonly idempotency_store: CheckResult }
}

/**
 * The scope of the readiness probe's claims. Account scopes are `acct_` ids, so no account can
 * reach it; and each probe claims a fresh key and releases it at once.
 */
const PROBE_SCOPE = 'ticksupply:readiness'

const NO_STORE = { 'cache-control': 'no-store' }

/**
 * `/healthz`: the process answers (liveness; nothing else is looked at). `/readyz`: the
 * database takes a write transaction and has every migration this version knows, and the
 * idempotency store grants and gives back a claim; `503 unavailable` otherwise, or while the
 * server shuts down. Both are public and cheap: concurrent probes share one check in flight.
 */
export function registerHealth(app: FastifyInstance, options: HealthOptions): void {
  const timeoutMs = options.timeoutMs ?? 2_000
  addComponentSchemas(app, [])
  let inFlight: Promise<Readiness> | undefined
  const probe = () => {
    inFlight ??= checkReadiness(options, timeoutMs).finally(() => {
      inFlight = undefined
    })
    return inFlight
  }

  app.get(
    '/healthz',
    {
      schema: {
        operationId: 'getHealth',
        summary: 'Liveness: the process answers',
        tags: ['Operations'],
        security: [],
        response: {
          200: {
            description: 'The process is alive.',
            type: 'object',
            properties: { status: { type: 'string', const: 'ok' } },
            required: ['status'],
          },
        },
      },
    },
    (_request, reply) => reply.headers(NO_STORE).type(JSON_TYPE).send('{"status":"ok"}'),
  )

  app.get(
    '/readyz',
    {
      schema: {
        operationId: 'getReadiness',
        summary: 'Readiness: the database and the idempotency store can take work',
        description:
          'Checks that the database takes a write transaction and has every migration applied, and that the idempotency store grants and releases a claim. `503` while either fails, or while the server shuts down.',
        tags: ['Operations'],
        security: [],
        response: {
          200: {
            description: 'Ready.',
            type: 'object',
            properties: {
              status: { type: 'string', const: 'ready' },
              checks: {
                type: 'object',
                properties: {
                  database: { type: 'string' },
                  idempotency_store: { type: 'string' },
                },
              },
            },
            required: ['status', 'checks'],
          },
          503: ref(
            ERROR_SCHEMA.$id,
            '`unavailable`: not ready; `details` says which check failed (`database`, `idempotency_store`) or that the server is shutting down (`shutting_down`).',
          ),
        },
      },
    },
    async (_request, reply) => {
      reply.headers(NO_STORE).type(JSON_TYPE)
      if (options.draining()) {
        return reply
          .code(503)
          .header('retry-after', '1')
          .send(
            renderError('unavailable', 'Not ready: the server is shutting down', {
              shutting_down: true,
            }),
          )
      }
      const readiness = await probe()
      if (readiness.ready) {
        return reply.send(JSON.stringify({ status: 'ready', checks: readiness.checks }))
      }
      const failed = Object.entries(readiness.checks)
        .filter(([, result]) => result !== 'ok')
        .map(([name]) => name.replace('_', ' '))
      return reply
        .code(503)
        .header('retry-after', '1')
        .send(
          renderError(
            'unavailable',
            `Not ready: the ${failed.join(' and the ')} ${failed.length > 1 ? 'are' : 'is'} unavailable`,
            readiness.checks,
          ),
        )
    },
  )
}

export async function checkReadiness(
  options: HealthOptions,
  timeoutMs: number,
): Promise<Readiness> {
  const [database, idempotencyStore] = await Promise.all([
    withTimeout(checkDatabase(options.db), timeoutMs),
    withTimeout(checkStore(options), timeoutMs),
  ])
  return {
    ready: database === 'ok' && idempotencyStore === 'ok',
    checks: { database, idempotency_store: idempotencyStore },
  }
}

/**
 * A write transaction, not just a read: it is what a request needs, and on SQLite it is where
 * a database file deleted or replaced under the server shows (the commit refuses).
 */
async function checkDatabase(db: Database): Promise<CheckResult> {
  try {
    const applied = await db.transaction((tx) =>
      tx.all<{ id: number | string }>('SELECT id FROM schema_migrations'),
    )
    const ids = new Set(applied.map((row) => Number(row.id)))
    const missing = MIGRATIONS.filter((migration) => !ids.has(migration.id))
    return missing.length === 0
      ? 'ok'
      : `migrations not applied: ${missing.map((m) => m.id).join(', ')}`
  } catch (error) {
    return describe(error)
  }
}

async function checkStore(options: HealthOptions): Promise<CheckResult> {
  const { store } = options
  // PostgreSQL grants no claim while its instance connection is down: say so plainly.
  if ((store as { listening?: unknown }).listening === false) return 'instance connection down'
  const ref = { scope: PROBE_SCOPE, key: randomUUID(), token: randomUUID() }
  try {
    const outcome = await store.claim({
      ...ref,
      fingerprint: '0'.repeat(64),
      leaseMs: options.leaseMs,
      ttlMs: options.ttlMs,
    })
    if (outcome.kind !== 'claimed') return `unexpected claim outcome: ${outcome.kind}`
    await store.release(ref)
    return 'ok'
  } catch (error) {
    return describe(error)
  }
}

/** A failure in a few words for the operator; never a statement's values. */
function describe(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && code !== '' ? `failed (${code})` : 'failed'
}

function withTimeout(check: Promise<CheckResult>, timeoutMs: number): Promise<CheckResult> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      resolve(`no answer within ${String(timeoutMs)} ms`)
    }, timeoutMs)
    timer.unref()
    void check.then((result) => {
      clearTimeout(timer)
      resolve(result)
    })
  })
}
