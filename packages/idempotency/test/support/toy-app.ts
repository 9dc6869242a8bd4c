import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import type { IdempotencyOptions } from '@ticksupply/idempotency'
import { createIdempotencyEngine } from '@ticksupply/idempotency'
import { fastifyIdempotency } from '@ticksupply/idempotency/fastify'
import type { SqliteTransaction } from '@ticksupply/idempotency/stores/sqlite'
import { openTemporarySqlite } from './sqlite.js'

export interface ToyApp {
  readonly url: string
  readonly server: FastifyInstance
  /** How many times each route's handler ran. */
  readonly runs: Record<string, number>
  /** Closes the idempotency store's database: the store is down from then on. */
  breakStore(): void
  close(): Promise<void>
}

/**
 * A small Fastify app behind the adapter, whose handlers count their runs:
 * - `POST /orders` (body `{"item": string}`, validated) sleeps `delayMs`, answers 201;
 * - `POST /fail` throws (a 500); `POST /missing` answers 404; `DELETE /orders/:id` answers 204;
 * - `PUT /orders/:id` and `GET /orders` answer 200.
 * The scope is the `x-tenant` header.
 */
export async function startToyApp(
  options: { delayMs?: number } & Partial<
    Omit<IdempotencyOptions<SqliteTransaction>, 'store'>
  > = {},
): Promise<ToyApp> {
  const sqlite = openTemporarySqlite(options.clock)
  const { delayMs = 0, ...engineOptions } = options
  const engine = createIdempotencyEngine({ store: sqlite.store, ...engineOptions })
  const server = Fastify()
  const runs: Record<string, number> = {}
  const count = (route: string) => (runs[route] = (runs[route] ?? 0) + 1)

  await server.register(fastifyIdempotency, {
    engine,
    scope: (request) => String(request.headers['x-tenant'] ?? 'default'),
  })
  server.post(
    '/orders',
    {
      schema: {
        body: {
          type: 'object',
          required: ['item'],
          additionalProperties: false,
          properties: { item: { type: 'string' } },
        },
      },
    },
    async (request, reply) => {
      const run = count('POST /orders')
      if (delayMs > 0) await sleep(delayMs)
      const { item } = request.body as { item: string }
      return reply
        .code(201)
        .header('location', `/orders/${String(run)}`)
        .send({ id: run, item })
    },
  )
  server.post('/fail', () => {
    count('POST /fail')
    return Promise.reject(new Error('the handler broke'))
  })
  server.post('/missing', async (_request, reply) => {
    count('POST /missing')
    return reply.code(404).send({ error: { code: 'not_found', message: 'No such thing' } })
  })
  server.delete('/orders/:id', async (_request, reply) => {
    count('DELETE /orders/:id')
    return reply.code(204).send()
  })
  server.put('/orders/:id', () => {
    count('PUT /orders/:id')
    return Promise.resolve({ replaced: true })
  })
  server.get('/orders', () => {
    count('GET /orders')
    return Promise.resolve([])
  })
  const url = await server.listen({ host: '127.0.0.1', port: 0 })
  return {
    url,
    server,
    runs,
    breakStore: () => {
      sqlite.connection.close()
    },
    close: async () => {
      await server.close()
      await sqlite.close().catch(() => undefined)
    },
  }
}
