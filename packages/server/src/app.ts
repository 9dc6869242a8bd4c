import Fastify, { LogController } from 'fastify'
import type { FastifyInstance, HTTPMethods } from 'fastify'
import { createIdempotencyEngine, startPurger } from '@ticksupply/idempotency'
import type { Clock, Purger } from '@ticksupply/idempotency'
import { fastifyIdempotency } from '@ticksupply/idempotency/fastify'
import type { ServerConfig } from './config.js'
import type { Database } from './db/database.js'
import { migrate } from './db/migrations.js'
import { openDatabase } from './db/open-database.js'
import { addApiKey, ensureAccount } from './domain/accounts.js'
import { seedCatalog } from './domain/catalog.js'
import { parseJsonKeepingInt64 } from './domain/json-int64.js'
import {
  createDatabaseRateLimitStore,
  createMemoryRateLimitStore,
} from './domain/rate-limit-store.js'
import { accountOf, registerAuth } from './http/auth.js'
import { registerDeadline } from './http/deadline.js'
import { answerClientError, registerHostCheck } from './http/client-errors.js'
import type { RequestGuard } from './http/error-handler.js'
import { answerFrameworkErrors, registerErrorHandling } from './http/error-handler.js'
import { refuseBodiesWhereNoneBelongs } from './http/bodiless-routes.js'
import { readRawBody, registerJsonBody } from './http/json-body.js'
import { registerTextValueCheck } from './http/text-values.js'
import { registerHealth } from './http/health.js'
import { loggerOptions } from './http/log-redaction.js'
import type { RequestLog } from './http/request-log.js'
import { registerRequestLog, registerRequestLogRoutes } from './http/request-log.js'
import type { ServerMetrics } from './http/metrics.js'
import { createServerMetrics, registerMetrics } from './http/metrics.js'
import { registerOpenApi } from './http/openapi.js'
import { registerRateLimit } from './http/rate-limit.js'
import { closeConnections, createShutdownCoordinator } from './http/shutdown.js'
import { routeUndecodablePathsLiterally } from './http/path-escapes.js'
import { generateRequestId } from './http/request-id.js'
import { registerResponseHeaders } from './http/response-headers.js'
import { registerAvailabilityRoutes } from './routes/availability.js'
import { registerBillingRoutes } from './routes/billing.js'
import { registerCatalogRoutes } from './routes/catalog.js'
import { registerSubscriptionRoutes } from './routes/subscriptions.js'
import { setUpExports } from './routes/exports/index.js'

export interface App {
  readonly server: FastifyInstance
  readonly db: Database
  /** Where the data lives, for people (no password). */
  readonly databaseDescription: string
  readonly metrics: ServerMetrics
  /** Every route the server serves, in the order registered (Fastify's own HEAD routes too). */
  readonly routes: readonly RegisteredRoute[]
  /** Listens and resolves the base URL, e.g. `http://127.0.0.1:8080`. */
  listen(): Promise<string>
  /**
   * Shuts down gracefully: stops accepting, refuses new requests on open connections (503),
   * lets the requests in flight finish within `graceMs` (default `SHUTDOWN_GRACE_MS`), aborts
   * the operations of those that do not (they roll back, their keys are released), stops the
   * export worker at a safe point (its job goes back to the queue) and the purger, then closes
   * the idempotency store and the database. Calling it again returns the same promise.
   */
  close(options?: { readonly graceMs?: number }): Promise<ShutdownReport>
}

export interface ShutdownReport {
  /** Requests still running when the grace period ended; their operations were aborted. */
  readonly aborted: number
  /** Of those, the ones that had not answered when their connections were cut. */
  readonly cut: number
}

export interface RegisteredRoute {
  readonly method: HTTPMethods
  readonly url: string
  /** Left out of the OpenAPI document (`schema.hide`). */
  readonly hidden: boolean
}

const BODY_LIMIT_BYTES = 1024 * 1024
/**
 * Longer than any request line Node takes (16 KiB of headers in all): no path parameter is
 * refused by the router for its length; the routes' own checks of an id are plain patterns.
 */
const MAX_PATH_PARAMETER_LENGTH = 16 * 1024

/**
 * The Ticksupply API, ready to listen. Hooks run in the contract's order of checks: request id,
 * authentication, rate limit, idempotency key format, body validation, then the claim and the
 * handler.
 */
export interface AppOptions {
  /** The rate limiter's clock, for tests that wait out a window without waiting. */
  readonly clock?: Clock
}

export async function buildApp(config: ServerConfig, options: AppOptions = {}): Promise<App> {
  // A session frozen inside a transaction is ended within the lease, as a frozen holder's
  // claims are: no instance's requests wait on its locks for longer than that.
  const opened = openDatabase(config.database, {
    idleInTransactionTimeoutMs: Math.max(1_000, config.idempotencyLeaseMs),
  })
  const { db } = opened
  // First: on SQLite this makes the process the file's one owner, or refuses before anything
  // else touches the file.
  const idempotencyStore = await opened.openIdempotencyStore({
    leaseMs: config.idempotencyLeaseMs,
  })
  const now = Date.now()
  const { unknownMigrations } = await migrate(db, now, seedCatalog)
  for (const { account, apiKey } of config.apiKeys) {
    const created = await ensureAccount(db, account, now)
    await addApiKey(db, created.id, apiKey, now)
  }

  const { store } = idempotencyStore
  const metrics = createServerMetrics({
    store,
    // Read at each scrape, once the engine exists.
    engine: {
      get pendingRetries() {
        return engine.pendingRetries
      },
    },
  })
  const engine = createIdempotencyEngine({
    store,
    initialPollMs: config.idempotencyPollMs,
    ttlMs: config.idempotencyTtlMs,
    leaseMs: config.idempotencyLeaseMs,
    waitMs: config.idempotencyWaitMs,
    onEvent: (event) => {
      metrics.record(event)
      requestLog?.record(event)
    },
  })
  let requestLog: RequestLog | undefined

  // Authentication and the rate limit, for the requests Fastify answers before any hook.
  const guards: RequestGuard[] = []
  const server = Fastify({
    logger: config.logLevel === 'silent' ? false : loggerOptions(config.logLevel),
    // One line per request, written by registerRequestLog, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: generateRequestId,
    requestIdHeader: false,
    bodyLimit: BODY_LIMIT_BYTES,
    // A path that does not decode is routed with its percent signs literal, and an id of any
    // length reaches its route: a malformed id is the operation's stored 404, not the router's.
    rewriteUrl: routeUndecodablePathsLiterally,
    routerOptions: { maxParamLength: MAX_PATH_PARAMETER_LENGTH },
    // What the router still refuses is an unknown route, in the envelope.
    frameworkErrors: answerFrameworkErrors(guards),
    // Bytes that are not HTTP at all still get the envelope and a request id.
    clientErrorHandler: answerClientError,
    // Node's own Host check answers an empty 400; registerHostCheck answers in the envelope.
    http: { requireHostHeader: false },
    // While closing, Fastify would answer new requests with a 503 of its own shape; the
    // shutdown coordinator answers them in the envelope instead.
    return503OnClosing: false,
    // Unknown fields are refused, not silently dropped; types are never coerced.
    ajv: {
      // The draft body schema has `properties` without `type: 'object'` on purpose (no body at
      // all is allowed); strictTypes would log that at every start.
      customOptions: {
        removeAdditional: false,
        coerceTypes: false,
        allErrors: false,
        strictTypes: false,
      },
    },
  })
  if (unknownMigrations.length > 0) {
    server.log.warn(
      { unknownMigrations },
      `The database was migrated by a newer version of this server (migrations ${unknownMigrations.join(', ')} are not in this one); running on it as it is`,
    )
  }
  let purger: Purger | undefined
  const shutdown = createShutdownCoordinator()
  const routes: RegisteredRoute[] = []
  server.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      routes.push({ method, url: route.url, hidden: route.schema?.hide === true })
    }
  })
  // First: the request's log state must be in place before any other hook runs.
  if (config.logLevel !== 'silent') requestLog = registerRequestLog(server)
  registerResponseHeaders(server)
  registerHostCheck(server)
  shutdown.registerRefusal(server)
  registerDeadline(server, config.requestDeadlineMs)
  registerErrorHandling(server)
  registerJsonBody(server, BODY_LIMIT_BYTES)
  refuseBodiesWhereNoneBelongs(server)
  registerTextValueCheck(server)
  guards.push(registerAuth(server, db))
  const rateLimitWindows = [
    { name: 'minute', limit: config.rateLimitPerMinute, windowMs: 60_000 },
    { name: 'hour', limit: config.rateLimitPerHour, windowMs: 3_600_000 },
  ] as const
  guards.push(
    registerRateLimit(
      server,
      // A SQLite file has one owning process (decision 0006), so its buckets need not be shared:
      // in memory, no request waits for the database's write lock to be counted.
      db.dialect === 'sqlite'
        ? createMemoryRateLimitStore(rateLimitWindows)
        : createDatabaseRateLimitStore(db, rateLimitWindows),
      options.clock === undefined ? Date.now : () => (options.clock as Clock).now(),
    ),
  )
  await server.register(fastifyIdempotency, {
    engine,
    scope: (request) => accountOf(request).id,
    readRawBody,
  })
  if (requestLog !== undefined) registerRequestLogRoutes(server)
  shutdown.registerTracking(server)
  await registerOpenApi(server, {
    idempotencyTtlMs: config.idempotencyTtlMs,
    idempotencyWaitMs: config.idempotencyWaitMs,
    idempotencyLeaseMs: config.idempotencyLeaseMs,
    requestDeadlineMs: config.requestDeadlineMs,
    rateLimitPerMinute: config.rateLimitPerMinute,
    rateLimitPerHour: config.rateLimitPerHour,
    publicBaseUrl: config.exports.publicBaseUrl,
  })
  registerHealth(server, {
    db,
    store,
    leaseMs: config.idempotencyLeaseMs,
    ttlMs: config.idempotencyTtlMs,
    draining: () => shutdown.draining,
  })
  registerMetrics(server, metrics)
  registerCatalogRoutes(server, db)
  // Subscriptions read their bodies with int64s kept exact: `datastream_id` is an int64, which
  // a plain JSON.parse rounds past 2^53 (to another datastream's id).
  void server.register((scope, _options, done) => {
    registerJsonBody(scope, BODY_LIMIT_BYTES, parseJsonKeepingInt64)
    registerSubscriptionRoutes(scope, db, {
      delayMs: config.testHandlerDelayMs,
      crashAfterCommit: config.testExitAfterCommit,
    })
    done()
  })
  registerAvailabilityRoutes(server, db)
  registerBillingRoutes(server, db)
  const exportWorker = await setUpExports(server, db, config, BODY_LIMIT_BYTES)
  let closing: Promise<ShutdownReport> | undefined

  return {
    server,
    db,
    databaseDescription: opened.description,
    metrics,
    routes,
    async listen() {
      const address = await server.listen({ host: config.host, port: config.port })
      exportWorker.start()
      purger = startPurger(store, {
        intervalMs: config.idempotencyPurgeIntervalMs,
        onError: (error) => {
          metrics.recordPurgeFailure()
          server.log.error({ err: error }, 'idempotency purge failed')
        },
        onRun: (deleted) => {
          metrics.recordPurgeRun(deleted)
        },
      })
      return address
    },
    close(options) {
      closing ??= closeGracefully(options?.graceMs ?? config.shutdownGraceMs)
      return closing
    },
  }

  async function closeGracefully(graceMs: number): Promise<ShutdownReport> {
    const startedAt = Date.now()
    shutdown.beginDraining()
    // Stops listening now; resolves once every connection has ended (answers written while
    // closing carry `Connection: close`, idle connections are closed at once).
    const serverClosed = server.close()
    const backgroundStopped = Promise.all([exportWorker.stop(), purger?.stop()])
    const report = await shutdown.drain(graceMs)
    if (report.aborted > 0) {
      server.log.warn(
        report,
        'shutdown: requests still running after the grace period were aborted',
      )
    }
    // Connections of requests that did not answer even after their abort are cut now; the
    // rest (answers still streaming, idle keep-alives) get what is left of the grace period.
    if (report.cut > 0) server.server.closeAllConnections()
    await closeConnections(
      server.server,
      serverClosed,
      Math.max(0, startedAt + graceMs - Date.now()),
    )
    await backgroundStopped
    await idempotencyStore.close()
    await db.close()
    return report
  }
}
