import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable, pipeline } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { createAdaptorServer } from '@hono/node-server'
import express from 'express'
import type { NextFunction, Request as ExpressRequest, Response as ExpressResponse } from 'express'
import Fastify from 'fastify'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { IdempotencyOptions } from '@ticksupply/idempotency'
import {
  createIdempotencyEngine,
  isIdempotencyHttpError,
  renderErrorEnvelope,
} from '@ticksupply/idempotency'
import { expressIdempotency, keepRawBody } from '@ticksupply/idempotency/express'
import { completeReply, fastifyIdempotency } from '@ticksupply/idempotency/fastify'
import type { FetchIdempotencyOptions } from '@ticksupply/idempotency/fetch'
import { createFetchIdempotency } from '@ticksupply/idempotency/fetch'
import type { SqliteTransaction } from '@ticksupply/idempotency/stores/sqlite'
import { openTemporarySqlite } from './sqlite.js'

export const ADAPTERS = ['fastify', 'express', 'fetch'] as const
export type AdapterName = (typeof ADAPTERS)[number]

/** The options the three adapters share, as the toy apps pass them on. */
export type ToyAdapterOptions = Partial<
  Omit<FetchIdempotencyOptions<SqliteTransaction>, 'engine' | 'scope' | 'skip' | 'requestId'>
> & {
  /** Ignore the key of requests that carry `x-skip-idempotency: 1`. */
  readonly skipMarked?: boolean
}

export interface ToyAppOptions extends Partial<
  Omit<IdempotencyOptions<SqliteTransaction>, 'store'>
> {
  /** Which adapter fronts the app. @default 'fastify' */
  readonly adapter?: AdapterName
  /** How long `POST /orders` sleeps once it runs. */
  readonly delayMs?: number
  readonly options?: ToyAdapterOptions
}

export interface ToyApp {
  readonly adapter: AdapterName
  readonly url: string
  /** How many times each route's operation ran. */
  readonly runs: Record<string, number>
  /** Rows the transactional route committed. */
  committedOrders(): number
  /** Closes the idempotency store's database: the store is down from then on. */
  breakStore(): void
  close(): Promise<void>
}

interface Answer {
  readonly status: number
  readonly headers?: Record<string, string>
  /** JSON unless a string. */
  readonly body?: unknown
}

const JSON_TYPE = 'application/json; charset=utf-8'

/**
 * One small app on the chosen adapter, the same routes on each, whose operations count their
 * runs. Every answer carries its own `x-request-id` (`req-1`, `req-2`, ...); the scope is the
 * `x-tenant` header.
 *
 * - `POST /orders` (body `{"item": string}`, validated before the claim): sleeps `delayMs`,
 *   answers 201 with `Location`, `Cache-Control` and `X-Order-Version`;
 * - `POST /orders-required`: the same, on a route that requires a key;
 * - `POST /unkeyed`: a route that opted out of idempotency, answers 201;
 * - `POST /fail` throws (500); `POST /timeout` answers 408; `POST /missing` answers 404;
 * - `POST /big?bytes=N` answers N bytes of text;
 * - `POST /broken-stream` starts a 200 whose body stream fails after its first chunk;
 * - `POST /tx-orders[?fail=1]` inserts a row and completes the claim in the same SQLite
 *   transaction (with `fail=1` it throws after the completion, so both roll back);
 * - `DELETE /orders/:id` answers 204; `PUT /orders/:id` and `GET /orders` answer 200.
 */
export async function startToyApp(options: ToyAppOptions = {}): Promise<ToyApp> {
  const {
    adapter = 'fastify',
    delayMs = 0,
    options: adapterOptions = {},
    ...engineOptions
  } = options
  const sqlite = openTemporarySqlite(options.clock)
  sqlite.connection.database.exec('CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)')
  const engine = createIdempotencyEngine({ store: sqlite.store, ...engineOptions })
  const runs: Record<string, number> = {}
  const count = (route: string) => (runs[route] = (runs[route] ?? 0) + 1)
  const { skipMarked = false, ...shared } = adapterOptions
  const common = { engine, ...shared }

  /** The operations, framework-neutral: what each route does once it runs. */
  const operations = {
    async order(route: string, body: unknown): Promise<Answer> {
      const run = count(route)
      if (delayMs > 0) await sleep(delayMs)
      return {
        status: 201,
        headers: {
          location: `/orders/${String(run)}`,
          'cache-control': 'no-store',
          'x-order-version': String(run),
        },
        body: { id: run, item: (body as { item: string }).item },
      }
    },
    unkeyed(): Answer {
      return { status: 201, body: { run: count('POST /unkeyed') } }
    },
    fail(): never {
      count('POST /fail')
      throw new Error('the handler broke')
    },
    timeout(): Answer {
      count('POST /timeout')
      return {
        status: 408,
        body: { error: { code: 'request_timeout', message: 'Request timed out' } },
      }
    },
    missing(): Answer {
      count('POST /missing')
      return { status: 404, body: { error: { code: 'not_found', message: 'No such thing' } } }
    },
    /** The body of `POST /broken-stream`: one chunk, then its source fails. */
    brokenStream(): Readable {
      count('POST /broken-stream')
      let pushed = false
      return new Readable({
        read() {
          if (pushed) return
          pushed = true
          this.push('partial ')
          setImmediate(() => this.destroy(new Error('the upstream broke')))
        },
      })
    },
    big(bytes: number): Answer {
      count('POST /big')
      return { status: 200, headers: { 'content-type': 'text/plain' }, body: 'x'.repeat(bytes) }
    },
    remove(): Answer {
      count('DELETE /orders/:id')
      return { status: 204 }
    },
    replace(): Answer {
      count('PUT /orders/:id')
      return { status: 200, body: { replaced: true } }
    },
    list(): Answer {
      count('GET /orders')
      return { status: 200, body: [] }
    },
    /** Inserts the order and, inside the same transaction, stores its answer. */
    txOrder(
      body: unknown,
      fail: boolean,
      complete: (tx: SqliteTransaction, answer: Answer) => Promise<void>,
    ): Promise<void> {
      count('POST /tx-orders')
      return sqlite.connection.transaction(async (tx) => {
        const { item } = body as { item: string }
        const { lastInsertRowid } = tx.database
          .prepare('INSERT INTO orders (item) VALUES (?)')
          .run(item)
        await complete(tx, { status: 201, body: { id: Number(lastInsertRowid), item } })
        if (fail) throw new Error('failed after completing')
      })
    },
  }

  let requests = 0
  const nextRequestId = () => `req-${String(++requests)}`
  const validOrder = (body: unknown) =>
    typeof body === 'object' &&
    body !== null &&
    Object.keys(body).length === 1 &&
    typeof (body as { item?: unknown }).item === 'string'
  const invalid = {
    status: 400,
    body: { error: { code: 'invalid_argument', message: 'Invalid order' } },
  } as const

  let server: Server
  let url: string
  let closeServer: () => Promise<void>

  if (adapter === 'fastify') {
    const app = Fastify({ genReqId: nextRequestId, forceCloseConnections: true })
    app.addHook('onRequest', async (request, reply) => {
      reply.header('x-request-id', request.id)
    })
    app.setErrorHandler((error, _request, reply) => {
      if (isIdempotencyHttpError(error)) {
        return reply
          .code(error.statusCode)
          .headers(error.response.headers)
          .send(error.response.body)
      }
      if ((error as { validation?: unknown }).validation !== undefined) {
        return sendAnswer(reply, invalid)
      }
      return reply.code(500).type(JSON_TYPE).send(renderErrorEnvelope('internal', 'Internal error'))
    })
    await app.register(fastifyIdempotency, {
      ...common,
      scope: (request) => String(request.headers['x-tenant'] ?? 'default'),
      ...(skipMarked ? { skip: (request) => request.headers['x-skip-idempotency'] === '1' } : {}),
    })
    const orderSchema = {
      schema: {
        body: {
          type: 'object',
          required: ['item'],
          additionalProperties: false,
          properties: { item: { type: 'string' } },
        },
      },
    }
    app.post('/orders', orderSchema, async (request, reply) =>
      sendAnswer(reply, await operations.order('POST /orders', request.body)),
    )
    app.post(
      '/orders-required',
      { ...orderSchema, config: { idempotency: { required: true } } },
      async (request, reply) =>
        sendAnswer(reply, await operations.order('POST /orders-required', request.body)),
    )
    app.post('/unkeyed', { config: { idempotency: false } }, async (_request, reply) =>
      sendAnswer(reply, operations.unkeyed()),
    )
    app.post('/fail', () => operations.fail())
    app.post('/timeout', async (_request, reply) => sendAnswer(reply, operations.timeout()))
    app.post('/missing', async (_request, reply) => sendAnswer(reply, operations.missing()))
    app.post('/big', async (request: FastifyRequest<{ Querystring: { bytes: string } }>, reply) =>
      sendAnswer(reply, operations.big(Number(request.query.bytes))),
    )
    app.post('/broken-stream', async (_request, reply) =>
      reply.type('text/plain').send(operations.brokenStream()),
    )
    app.post(
      '/tx-orders',
      orderSchema,
      async (request: FastifyRequest<{ Querystring: { fail?: string } }>, reply) => {
        let sent: string | Buffer = ''
        await operations.txOrder(request.body, request.query.fail === '1', async (tx, answer) => {
          reply.code(answer.status)
          sent = await completeReply(reply, answer.body, tx)
        })
        return reply.send(sent)
      },
    )
    app.delete('/orders/:id', async (_request, reply) => sendAnswer(reply, operations.remove()))
    app.put('/orders/:id', async (_request, reply) => sendAnswer(reply, operations.replace()))
    app.get('/orders', async (_request, reply) => sendAnswer(reply, operations.list()))
    url = await app.listen({ host: '127.0.0.1', port: 0 })
    server = app.server
    closeServer = () => app.close()
  } else if (adapter === 'express') {
    const app = express()
    app.use((_req, res, next) => {
      res.setHeader('x-request-id', nextRequestId())
      next()
    })
    const idempotency = expressIdempotency({
      ...common,
      scope: (req) => String(req.headers['x-tenant'] ?? 'default'),
      ...(skipMarked ? { skip: (req) => req.headers['x-skip-idempotency'] === '1' } : {}),
    })
    // The key's format, then the body's, then the claim: the contract's order of checks.
    const json = express.json({ verify: keepRawBody })
    const required = idempotency.route({ required: true })
    const validate = (req: ExpressRequest, res: ExpressResponse, next: NextFunction) => {
      if (validOrder(req.body)) next()
      else sendExpress(res, invalid)
    }
    app.post('/orders', idempotency.checkKey, json, validate, idempotency, async (req, res) => {
      sendExpress(res, await operations.order('POST /orders', req.body))
    })
    app.post('/orders-required', required.checkKey, json, validate, required, async (req, res) => {
      sendExpress(res, await operations.order('POST /orders-required', req.body))
    })
    app.post('/unkeyed', json, (_req, res) => {
      sendExpress(res, operations.unkeyed())
    })
    app.post('/fail', json, idempotency, () => operations.fail())
    app.post('/timeout', json, idempotency, (_req, res) => {
      sendExpress(res, operations.timeout())
    })
    app.post('/missing', json, idempotency, (_req, res) => {
      sendExpress(res, operations.missing())
    })
    app.post('/big', json, idempotency, (req, res) => {
      sendExpress(res, operations.big(Number(req.query['bytes'])))
    })
    app.post('/broken-stream', json, idempotency, (_req, res) => {
      res.type('text/plain')
      pipeline(operations.brokenStream(), res, () => undefined)
    })
    app.post('/tx-orders', idempotency.checkKey, json, validate, idempotency, async (req, res) => {
      let sent: Buffer = Buffer.alloc(0)
      await operations.txOrder(req.body, req.query['fail'] === '1', async (tx, answer) => {
        res.status(answer.status)
        sent = await idempotency.complete(res, answer.body, tx)
      })
      res.send(sent)
    })
    app.delete('/orders/:id', json, idempotency, (_req, res) => {
      sendExpress(res, operations.remove())
    })
    app.put('/orders/:id', json, idempotency, (_req, res) => {
      sendExpress(res, operations.replace())
    })
    app.get('/orders', idempotency, (_req, res) => {
      sendExpress(res, operations.list())
    })
    app.use((error: unknown, _req: ExpressRequest, res: ExpressResponse, next: NextFunction) => {
      if (res.headersSent) {
        next(error)
        return
      }
      if (isIdempotencyHttpError(error)) {
        res.status(error.statusCode).set(error.response.headers).send(error.response.body)
        return
      }
      if ((error as { type?: unknown }).type === 'entity.parse.failed') {
        sendExpress(res, invalid)
        return
      }
      res.status(500).type(JSON_TYPE).send(renderErrorEnvelope('internal', 'Internal error'))
    })
    server = app.listen(0, '127.0.0.1')
    await new Promise<void>((resolve) => server.once('listening', resolve))
    url = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`
    closeServer = () => closeNodeServer(server)
  } else {
    interface Context {
      readonly id: string
      readonly skip: boolean
    }
    const idempotency = createFetchIdempotency<SqliteTransaction, [Context]>({
      ...common,
      scope: (request) => request.headers.get('x-tenant') ?? 'default',
      requestId: (_request, context) => context.id,
      ...(skipMarked ? { skip: (_request, context) => context.skip } : {}),
    })
    const orders = idempotency.wrap(async (request) =>
      fetchAnswer(await operations.order('POST /orders', await request.json())),
    )
    const ordersRequired = idempotency.wrap(
      async (request) =>
        fetchAnswer(await operations.order('POST /orders-required', await request.json())),
      { required: true },
    )
    const keyed: Record<string, (request: Request, context: Context) => Promise<Response>> = {
      'POST /fail': idempotency.wrap(() => operations.fail()),
      'POST /timeout': idempotency.wrap(() => fetchAnswer(operations.timeout())),
      'POST /missing': idempotency.wrap(() => fetchAnswer(operations.missing())),
      'POST /big': idempotency.wrap((request) =>
        fetchAnswer(operations.big(Number(new URL(request.url).searchParams.get('bytes')))),
      ),
      'POST /broken-stream': idempotency.wrap(
        () =>
          new Response(Readable.toWeb(operations.brokenStream()) as ReadableStream<Uint8Array>, {
            headers: { 'content-type': 'text/plain' },
          }),
      ),
      'DELETE /orders/:id': idempotency.wrap(() => fetchAnswer(operations.remove())),
      'PUT /orders/:id': idempotency.wrap(() => fetchAnswer(operations.replace())),
      'GET /orders': idempotency.wrap(() => fetchAnswer(operations.list())),
      'POST /tx-orders': idempotency.wrap(async (request) => {
        let sent = new Response()
        await operations.txOrder(
          await request.json(),
          new URL(request.url).searchParams.get('fail') === '1',
          async (tx, answer) => {
            sent = await idempotency.complete(request, fetchAnswer(answer), tx)
          },
        )
        return sent
      }),
    }
    const route = async (request: Request, context: Context): Promise<Response> => {
      const { pathname } = new URL(request.url)
      const name = `${request.method} ${pathname.replace(/^\/orders\/[^/]+$/, '/orders/:id')}`
      if (
        name === 'POST /orders' ||
        name === 'POST /orders-required' ||
        name === 'POST /tx-orders'
      ) {
        // The key's format, then validation before the claim, on a copy of the body, as the
        // README recommends (the order of checks).
        const badKey =
          name === 'POST /orders-required'
            ? idempotency.checkKeyOf({ required: true })(request, context)
            : idempotency.checkKey(request, context)
        if (badKey !== undefined) return badKey
        const body: unknown = await request
          .clone()
          .json()
          .catch(() => undefined)
        if (!validOrder(body)) return fetchAnswer(invalid)
        if (name === 'POST /orders') return orders(request, context)
        if (name === 'POST /orders-required') return ordersRequired(request, context)
      }
      if (name === 'POST /unkeyed') return fetchAnswer(operations.unkeyed())
      const handler = keyed[name]
      if (handler === undefined) return fetchAnswer({ status: 404 })
      return handler(request, context)
    }
    const fetchHandler = async (request: Request): Promise<Response> => {
      const context = {
        id: nextRequestId(),
        skip: request.headers.get('x-skip-idempotency') === '1',
      }
      let response: Response
      try {
        response = await route(request, context)
      } catch {
        response = new Response(renderErrorEnvelope('internal', 'Internal error'), {
          status: 500,
          headers: { 'content-type': JSON_TYPE },
        })
      }
      response.headers.set('x-request-id', context.id)
      return response
    }
    server = createAdaptorServer({ fetch: fetchHandler }) as Server
    server.listen(0, '127.0.0.1')
    await new Promise<void>((resolve) => server.once('listening', resolve))
    url = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`
    closeServer = () => closeNodeServer(server)
  }

  return {
    adapter,
    url,
    runs,
    committedOrders: () =>
      (
        sqlite.connection.database.prepare('SELECT count(*) AS n FROM orders').get() as {
          n: number
        }
      ).n,
    breakStore: () => {
      sqlite.connection.close()
    },
    close: async () => {
      await closeServer()
      await sqlite.close().catch(() => undefined)
    },
  }
}

function sendAnswer(reply: FastifyReply, answer: Answer): FastifyReply {
  reply.code(answer.status).headers(answer.headers ?? {})
  if (answer.body === undefined) return reply.send()
  if (typeof answer.body === 'string') return reply.send(answer.body)
  return reply.type(JSON_TYPE).send(JSON.stringify(answer.body))
}

function sendExpress(res: ExpressResponse, answer: Answer): void {
  res.status(answer.status).set(answer.headers ?? {})
  if (answer.body === undefined) res.end()
  else if (typeof answer.body === 'string') res.send(answer.body)
  else res.json(answer.body)
}

function fetchAnswer(answer: Answer): Response {
  const headers = new Headers(answer.headers)
  if (answer.body === undefined) return new Response(null, { status: answer.status, headers })
  if (typeof answer.body === 'string') {
    return new Response(answer.body, { status: answer.status, headers })
  }
  headers.set('content-type', JSON_TYPE)
  return new Response(JSON.stringify(answer.body), { status: answer.status, headers })
}

/** Closes a server and every connection it still has (keep-alive ones included). */
function closeNodeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => {
      if (error === undefined) resolve()
      else reject(error)
    })
    server.closeAllConnections()
  })
}
