import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { createIdempotencyEngine, startPurger } from '@ticksupply/idempotency'
import type { Purger } from '@ticksupply/idempotency'
import { fastifyIdempotency } from '@ticksupply/idempotency/fastify'
import type { ServerConfig } from './config.js'
import type { Database } from './db/database.js'
import { migrate } from './db/migrations.js'
import { openDatabase } from './db/open-database.js'
import { addApiKey, ensureAccount } from './domain/accounts.js'
import { seedCatalog } from './domain/catalog.js'
import { accountOf, registerAuth } from './http/auth.js'
import { registerErrorHandling } from './http/error-handler.js'
import { registerJsonBody } from './http/json-body.js'
import type { IdempotencyMetrics } from './http/metrics.js'
import { createIdempotencyMetrics, registerMetricsRoute } from './http/metrics.js'
import { generateRequestId } from './http/request-id.js'
import { registerCatalogRoutes } from './routes/catalog.js'
import { registerSubscriptionRoutes } from './routes/subscriptions.js'

export interface App {
  readonly server: FastifyInstance
  readonly db: Database
  /** Where the data lives, for people (no password). */
  readonly databaseDescription: string
  readonly metrics: IdempotencyMetrics
  /** Listens and resolves the base URL, e.g. `http://127.0.0.1:8080`. */
  listen(): Promise<string>
  close(): Promise<void>
}

const BODY_LIMIT_BYTES = 1024 * 1024

/**
 * The Ticksupply API, ready to listen. Hooks run in the contract's order of checks: request id,
 * authentication, idempotency key format, body validation, then the claim and the handler.
 */
export async function buildApp(config: ServerConfig): Promise<App> {
  const opened = openDatabase(config.database)
  const { db } = opened
  const now = Date.now()
  await migrate(db, now, seedCatalog)
  for (const { account, apiKey } of config.apiKeys) {
    const created = await ensureAccount(db, account, now)
    await addApiKey(db, created.id, apiKey, now)
  }

  const metrics = createIdempotencyMetrics()
  const idempotencyStore = await opened.openIdempotencyStore({})
  const { store } = idempotencyStore
  const engine = createIdempotencyEngine({
    store,
    initialPollMs: config.idempotencyPollMs,
    ttlMs: config.idempotencyTtlMs,
    leaseMs: config.idempotencyLeaseMs,
    waitMs: config.idempotencyWaitMs,
    onEvent: (event) => {
      metrics.record(event)
    },
  })

  const server = Fastify({
    logger: config.logLevel === 'silent' ? false : { level: config.logLevel },
    genReqId: generateRequestId,
    requestIdHeader: false,
    bodyLimit: BODY_LIMIT_BYTES,
    handlerTimeout: config.requestDeadlineMs,
    // Unknown fields are refused, not silently dropped; types are never coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  })
  let purger: Purger | undefined
  server.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
  registerErrorHandling(server)
  registerJsonBody(server, BODY_LIMIT_BYTES)
  registerAuth(server, db)
  await server.register(fastifyIdempotency, {
    engine,
    scope: (request) => accountOf(request).id,
  })
  registerMetricsRoute(server, metrics)
  registerCatalogRoutes(server, db)
  registerSubscriptionRoutes(server, db, {
    delayMs: config.testHandlerDelayMs,
    crashAfterCommit: config.testExitAfterCommit,
  })

  return {
    server,
    db,
    databaseDescription: opened.description,
    metrics,
    async listen() {
      const address = await server.listen({ host: config.host, port: config.port })
      purger = startPurger(store, {
        onError: (error) => {
          server.log.error({ err: error }, 'idempotency purge failed')
        },
      })
      return address
    },
    async close() {
      await purger?.stop()
      await server.close()
      await idempotencyStore.close()
      await db.close()
    },
  }
}
