/**
 * The handler micro-benchmark's server: one `POST /orders` handler answering 201 {"id": uuid},
 * bare or behind one idempotency layer, run as a child process of the benchmark (pinned to
 * CPU 0). Usage: `orders-app.ts <layer>`; it reports `{ type: 'ready', url }` over IPC.
 *
 * Our layer is mounted exactly as packages/idempotency/README.md's quick start shows: the
 * Fastify adapter with `engine` and `scope` only (no `readRawBody`), and `startPurger`. The
 * peers are mounted as their own documentation shows.
 *
 * With BENCH_HANDLER_DELAY_MS, the handler sleeps that long and counts its runs, and every
 * request's arrival and answer times are kept (process.hrtime, the machine's monotonic clock,
 * comparable across processes): the storm benchmark asks for them with `{ type: 'stats' }`.
 */
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import pg from 'pg'
import { createIdempotencyEngine, startPurger } from '@ticksupply/idempotency'
import type {
  IdempotencyEngine,
  IdempotencyEvent,
  Purger,
  StoreTransaction,
} from '@ticksupply/idempotency'
import { fastifyIdempotency } from '@ticksupply/idempotency/fastify'
import { createSqliteStore, openSqliteConnection } from '@ticksupply/idempotency/stores/sqlite'
import { createPostgresStore } from '@ticksupply/idempotency/stores/postgres'
import { LAYERS, isLayer } from './layers.js'
import type { Layer } from './layers.js'
import type { AnswerTime, AppMessage, ParentMessage } from './messages.js'

const layerName = process.argv[2] ?? ''
if (!isLayer(layerName)) {
  throw new Error(`unknown layer ${layerName}; one of ${Object.keys(LAYERS).join(', ')}`)
}
const layer: Layer = layerName
const env = process.env
const dataDir = env['BENCH_DIR'] ?? '.'
const delayMs = Number(env['BENCH_HANDLER_DELAY_MS'] ?? '0')
const SCOPE = 'bench-account'

let runs = 0
const answers: AnswerTime[] = []
/** When each completion was stored (the engine's `completed` event), storm mode only. */
const completions: string[] = []
// Storm mode only, so that the throughput scenarios mount the layer exactly as documented.
const stormEvents =
  delayMs > 0
    ? {
        onEvent: (event: IdempotencyEvent) => {
          if (event.type === 'completed') completions.push(process.hrtime.bigint().toString())
        },
      }
    : {}
const closers: (() => Promise<void> | void)[] = []

function send(message: AppMessage): void {
  process.send?.(message)
}

/** What every variant of the handler does. */
async function createOrder(): Promise<{ id: string }> {
  if (delayMs > 0) {
    runs++
    await sleep(delayMs)
  }
  return { id: randomUUID() }
}

function recordAnswer(arrivedNs: bigint, replayed: boolean, status: number): void {
  if (delayMs > 0) {
    answers.push({
      arrivedNs: arrivedNs.toString(),
      atNs: process.hrtime.bigint().toString(),
      replayed,
      status,
    })
  }
}

function optionalModule(specifier: string): Promise<unknown> {
  // A variable specifier: the module may not exist yet (another branch is writing it), and the
  // type checker must not insist on it.
  return import(specifier) as Promise<unknown>
}

async function ourEngine(
  store: 'sqlite' | 'postgres' | 'redis',
): Promise<IdempotencyEngine<StoreTransaction>> {
  let purger: Purger
  let engine: IdempotencyEngine<StoreTransaction>
  if (store === 'sqlite') {
    const connection = openSqliteConnection(join(dataDir, `${layer}-${randomUUID()}.db`))
    const sqlite = createSqliteStore({ connection })
    engine = createIdempotencyEngine({ store: sqlite, ...stormEvents })
    purger = startPurger(sqlite)
    closers.push(() => {
      sqlite.close()
      connection.close()
    })
  } else if (store === 'postgres') {
    const pool = new pg.Pool({ connectionString: required('BENCH_POSTGRES_URL') })
    const postgres = await createPostgresStore({ pool })
    engine = createIdempotencyEngine({ store: postgres, ...stormEvents })
    purger = startPurger(postgres)
    closers.push(async () => {
      await postgres.close()
      await pool.end()
    })
  } else {
    const { createRedisStore } = (await optionalModule('@ticksupply/idempotency/stores/redis')) as {
      createRedisStore: (options: { client: unknown }) => Promise<Parameters<typeof startPurger>[0]>
    }
    const { createClient } = (await optionalModule('redis')) as {
      createClient: (options: object) => {
        on(event: 'error', fn: () => void): void
        connect(): Promise<unknown>
        quit(): Promise<unknown>
      }
    }
    const client = createClient({ url: required('BENCH_REDIS_URL'), disableOfflineQueue: true })
    client.on('error', () => undefined)
    await client.connect()
    const redis = await createRedisStore({ client })
    engine = createIdempotencyEngine<StoreTransaction>({ store: redis, ...stormEvents })
    purger = startPurger(redis)
    closers.push(async () => {
      await client.quit()
    })
  }
  closers.unshift(() => purger.stop())
  return engine
}

function required(name: string): string {
  const value = env[name]
  if (value === undefined || value === '') throw new Error(`${name} is not set`)
  return value
}

function fastifyApp(): FastifyInstance {
  const app = Fastify({ logger: false })
  if (delayMs === 0) return app
  const arrivals = new WeakMap<FastifyRequest, bigint>()
  app.addHook('onRequest', (request, _reply, done) => {
    arrivals.set(request, process.hrtime.bigint())
    done()
  })
  app.addHook('onResponse', (request, reply, done) => {
    recordAnswer(
      arrivals.get(request) ?? 0n,
      reply.getHeader('idempotent-replayed') === 'true',
      reply.statusCode,
    )
    done()
  })
  return app
}

function ordersRoute(app: FastifyInstance): void {
  app.post('/orders', async (_request, reply) => reply.code(201).send(await createOrder()))
}

async function fastifyServer(): Promise<{ url: string; close: () => Promise<void> }> {
  const app = fastifyApp()
  switch (layer) {
    case 'bare':
      break
    case 'sqlite':
    case 'postgres':
    case 'redis': {
      const engine = await ourEngine(layer)
      // The quick start: after authentication (here the scope is one account).
      await app.register(fastifyIdempotency, { engine, scope: () => SCOPE })
      break
    }
    case 'node-idempotency-memory':
    case 'node-idempotency-redis':
      await mountNodeIdempotency(app, layer === 'node-idempotency-redis')
      break
    case 'powertools-redis':
      await mountPowertools(app)
      return listen(app)
    case 'express-bare':
    case 'express-sqlite':
    case 'fetch-bare':
    case 'fetch-sqlite':
      throw new Error(`${layer} is not a Fastify layer`)
  }
  ordersRoute(app)
  return listen(app)
}

async function listen(app: FastifyInstance): Promise<{ url: string; close: () => Promise<void> }> {
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { url, close: () => app.close() }
}

/**
 * @node-idempotency/core in a Fastify app. Its Fastify plugin (@node-idempotency/fastify) is
 * not on the npm registry, so the two hooks it documents are attached here: `onRequest` of the
 * library in `preHandler` (after body parsing: the fingerprint is over the parsed body), and
 * `onResponse` of the library in `onSend`, for every answer.
 */
async function mountNodeIdempotency(app: FastifyInstance, redis: boolean): Promise<void> {
  const core = await import('@node-idempotency/core')
  let storage
  if (redis) {
    const { RedisStorageAdapter } = await import('@node-idempotency/storage-adapter-redis')
    const adapter = new RedisStorageAdapter({ url: required('BENCH_REDIS_URL') })
    await adapter.connect()
    closers.push(() => adapter.disconnect())
    storage = adapter
  } else {
    const { MemoryStorageAdapter } = await import('@node-idempotency/storage-adapter-memory')
    storage = new MemoryStorageAdapter()
  }
  const idempotency = new core.Idempotency(storage)
  const paramsOf = (request: FastifyRequest) => ({
    headers: request.headers,
    body: request.body as Record<string, unknown>,
    path: request.url,
    method: request.method,
  })
  const statusOf: Record<string, number> = {
    [core.IdempotencyErrorCodes.REQUEST_IN_PROGRESS]: 409,
    [core.IdempotencyErrorCodes.IDEMPOTENCY_FINGERPRINT_MISSMATCH]: 422,
    [core.IdempotencyErrorCodes.IDEMPOTENCY_KEY_LEN_EXEEDED]: 400,
    [core.IdempotencyErrorCodes.IDEMPOTENCY_KEY_MISSING]: 400,
  }
  app.addHook('preHandler', async (request: FastifyRequest, reply: FastifyReply) => {
    try {
      const stored = await idempotency.onRequest(paramsOf(request))
      if (stored === undefined) return
      const status = stored.additional?.['statusCode']
      if (typeof status === 'number') reply.code(status)
      reply.header('idempotent-replayed', 'true')
      await reply.send(stored.body ?? stored.error)
    } catch (error) {
      if (!(error instanceof core.IdempotencyError)) throw error
      if (error.code === core.IdempotencyErrorCodes.REQUEST_IN_PROGRESS)
        reply.header('retry-after', '1')
      await reply.code(statusOf[error.code] ?? 500).send({ message: error.message })
    }
  })
  app.addHook('onSend', async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const statusCode = reply.statusCode
    await idempotency.onResponse(paramsOf(request), {
      additional: { statusCode },
      ...(statusCode < 400 ? { body: payload } : { error: payload }),
    })
    return payload
  })
}

/**
 * @aws-lambda-powertools/idempotency with its Redis persistence (CachePersistenceLayer on
 * @redis/client), outside Lambda: the operation is wrapped with `makeIdempotent`, the key is
 * taken from the header and the body is validated (`payloadValidationJmesPath`). Its cache
 * layer stores a completed record without the payload hash, so an identical retry is refused
 * with a validation error (409 here): its replay row measures that refusal.
 */
async function mountPowertools(app: FastifyInstance): Promise<void> {
  const powertools = await import('@aws-lambda-powertools/idempotency')
  const { CachePersistenceLayer } = await import('@aws-lambda-powertools/idempotency/cache')
  const { createClient } = await import('@redis/client')
  const client = createClient({ url: required('BENCH_REDIS_URL') })
  client.on('error', () => undefined)
  await client.connect()
  closers.push(async () => {
    await client.quit()
  })
  const persistenceStore = new CachePersistenceLayer({ client })
  const config = new powertools.IdempotencyConfig({
    eventKeyJmesPath: 'key',
    payloadValidationJmesPath: 'body',
  })
  // Outside Lambda there is no invocation deadline: without one, a record in progress has no
  // expiry and a concurrent duplicate takes it over (and the library warns on every request).
  // The server's own deadline stands in for it.
  config.registerLambdaContext({ getRemainingTimeInMillis: () => 10_000 })
  const idempotentCreate = powertools.makeIdempotent(
    // eslint-disable-next-line @typescript-eslint/no-unused-vars -- the library hashes and validates the event; the order itself ignores it
    (_event: { key: string; body: unknown }) => createOrder(),
    { persistenceStore, config },
  )
  app.post('/orders', async (request, reply) => {
    const key = request.headers['idempotency-key']
    try {
      const order =
        typeof key === 'string'
          ? await idempotentCreate({ key, body: request.body })
          : await createOrder()
      return await reply.code(201).send(order)
    } catch (error) {
      if (
        error instanceof powertools.IdempotencyValidationError ||
        error instanceof powertools.IdempotencyAlreadyInProgressError
      ) {
        return reply.code(409).send({ message: error.message })
      }
      throw error
    }
  })
}

interface ExpressLike {
  (): {
    use(handler: unknown): void
    post(path: string, ...handlers: unknown[]): void
    listen(port: number, host: string, done: () => void): Server
  }
  json(options: { verify?: unknown }): unknown
}

/** Express 5, bare or with this project's Express adapter (when both are installed). */
async function expressServer(): Promise<{ url: string; close: () => Promise<void> }> {
  const express = ((await optionalModule('express')) as { default: ExpressLike }).default
  const app = express()
  const handler = (_req: unknown, res: { status(code: number): { json(body: unknown): void } }) => {
    void createOrder().then((order) => {
      res.status(201).json(order)
    })
  }
  if (layer === 'express-sqlite') {
    const adapter = (await optionalModule('@ticksupply/idempotency/express')) as {
      expressIdempotency: (options: object) => unknown
      keepRawBody: unknown
    }
    const engine = await ourEngine('sqlite')
    app.use(express.json({ verify: adapter.keepRawBody }))
    const idempotency = adapter.expressIdempotency({ engine, scope: () => SCOPE })
    app.post('/orders', idempotency, handler)
  } else {
    app.use(express.json({}))
    app.post('/orders', handler)
  }
  return new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => {
      resolve({ url: urlOf(server), close: () => closeServer(server) })
    })
  })
}

/**
 * A fetch-style handler `(Request) => Response` behind node:http (the bridge every Node
 * runtime for such handlers has), bare or wrapped with this project's fetch adapter.
 */
async function fetchServer(): Promise<{ url: string; close: () => Promise<void> }> {
  const handler = async (): Promise<Response> =>
    new Response(JSON.stringify(await createOrder()), {
      status: 201,
      headers: { 'content-type': 'application/json; charset=utf-8' },
    })
  let serve: (request: Request) => Promise<Response> = handler
  if (layer === 'fetch-sqlite') {
    const adapter = (await optionalModule('@ticksupply/idempotency/fetch')) as {
      withIdempotency: (
        handler: (request: Request) => Promise<Response>,
        options: object,
      ) => (request: Request) => Promise<Response>
    }
    const engine = await ourEngine('sqlite')
    serve = adapter.withIdempotency(handler, { engine, scope: () => SCOPE })
  }
  const server = createServer((req, res) => {
    bridge(req, res, serve).catch(() => {
      res.statusCode = 500
      res.end()
    })
  })
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({ url: urlOf(server), close: () => closeServer(server) })
    })
  })
}

async function bridge(
  req: IncomingMessage,
  res: ServerResponse,
  serve: (request: Request) => Promise<Response>,
): Promise<void> {
  const arrivedNs = process.hrtime.bigint()
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  const headers = new Headers()
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string)
  }
  const method = req.method ?? 'GET'
  const request = new Request(`http://127.0.0.1${req.url ?? '/'}`, {
    method,
    headers,
    ...(method === 'GET' || method === 'HEAD' ? {} : { body: Buffer.concat(chunks) }),
  })
  const response = await serve(request)
  const body = Buffer.from(await response.arrayBuffer())
  res.writeHead(response.status, Object.fromEntries(response.headers))
  res.end(body)
  recordAnswer(arrivedNs, response.headers.get('idempotent-replayed') === 'true', response.status)
}

function urlOf(server: Server): string {
  const address = server.address()
  if (typeof address !== 'object' || address === null) throw new Error('not listening')
  return `http://127.0.0.1:${String(address.port)}`
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections()
    server.close(() => {
      resolve()
    })
  })
}

async function main(): Promise<void> {
  const family = LAYERS[layer].family
  const server =
    family === 'express'
      ? await expressServer()
      : family === 'fetch'
        ? await fetchServer()
        : await fastifyServer()
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'stats') {
      send({ type: 'stats', runs, answers, completions })
    } else {
      // A clean exit, so that --cpu-prof writes its profile.
      void (async () => {
        await server.close()
        for (const close of closers) await close()
        process.exit(0)
      })()
    }
  })
  send({ type: 'ready', url: server.url })
}

main().catch((error: unknown) => {
  send({ type: 'error', message: error instanceof Error ? error.message : String(error) })
  process.exit(1)
})
