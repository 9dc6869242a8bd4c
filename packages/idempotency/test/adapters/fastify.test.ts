/** What only the Fastify adapter has; the contract itself is adapter-contract.test.ts. */
import { Readable } from 'node:stream'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { createIdempotencyEngine } from '@ticksupply/idempotency'
import { completeReply, fastifyIdempotency } from '@ticksupply/idempotency/fastify'
import { newKey, send } from '../support/http.js'
import { openTemporarySqlite } from '../support/sqlite.js'

const order = '{"item":"widget"}'
let cleanup: (() => Promise<void>) | undefined

afterEach(async () => {
  await cleanup?.()
  cleanup = undefined
})

/** A bare Fastify app (no error handler of its own) behind the adapter. */
async function bareApp(
  routes: (app: FastifyInstance) => void,
  options: { readRawBody?: () => Uint8Array | undefined } = {},
): Promise<string> {
  const sqlite = openTemporarySqlite()
  const app = Fastify({ forceCloseConnections: true })
  cleanup = async () => {
    await app.close()
    await sqlite.close()
  }
  await app.register(fastifyIdempotency, {
    engine: createIdempotencyEngine({ store: sqlite.store }),
    scope: () => 'tenant',
    ...options,
  })
  routes(app)
  return app.listen({ host: '127.0.0.1', port: 0 })
}

describe('the Fastify adapter', () => {
  it("hands errors to Fastify's own error handler with their status and Retry-After", async () => {
    let runs = 0
    const url = await bareApp((app) => {
      app.post('/slow', async () => {
        runs++
        await new Promise((resolve) => setTimeout(resolve, 300))
        return { ok: true }
      })
    })
    const bad = await send(`${url}/slow`, { key: 'nope' })
    expect(bad.status).toBe(400)
    // Fastify's default shape: an app renders the envelope from error.response itself.
    expect(JSON.parse(bad.text)).toMatchObject({ statusCode: 400, code: 'key_invalid' })
    expect(runs).toBe(0)
  })

  it('refuses a body the parser did not keep rather than fingerprint without it', async () => {
    let runs = 0
    const url = await bareApp(
      (app) => {
        app.post('/orders', async (_request, reply) => {
          runs++
          return reply.code(201).send({ ok: true })
        })
      },
      // A parser that forgot to keep the bytes.
      { readRawBody: () => undefined },
    )
    expect((await send(`${url}/orders`, { key: newKey(), body: order })).status).toBe(500)
    expect(runs).toBe(0)
    // Without a body there is nothing to leave out: the request runs.
    expect((await send(`${url}/orders`, { key: newKey() })).status).toBe(201)
    expect(runs).toBe(1)
  })

  it('gives the key back for a streamed reply, whose bytes it cannot store', async () => {
    let runs = 0
    const url = await bareApp((app) => {
      app.post('/stream', async (_request, reply) => {
        runs++
        return reply.type('text/plain').send(Readable.from(['one ', 'two']))
      })
    })
    const key = newKey()
    for (let i = 0; i < 2; i++) {
      const answer = await send(`${url}/stream`, { key })
      expect(answer.text).toBe('one two')
      expect(answer.headers.get('idempotent-replayed')).toBeNull()
    }
    expect(runs).toBe(2)
  })

  it('stores with completeReply what reply.send would send: type, charset and bytes', async () => {
    const sqlite = openTemporarySqlite()
    const url = await bareApp((app) => {
      app.post('/text', async (_request, reply) =>
        reply.send(await sqlite.connection.transaction((tx) => completeReply(reply, 'plain', tx))),
      )
      app.post('/json-type', async (_request, reply) => {
        reply.type('application/vnd.order+json')
        return reply.send(
          await sqlite.connection.transaction((tx) => completeReply(reply, { a: 1 }, tx)),
        )
      })
    })
    const previous = cleanup
    cleanup = async () => {
      await previous?.()
      await sqlite.close()
    }
    for (const [path, type] of [
      ['/text', 'text/plain; charset=utf-8'],
      ['/json-type', 'application/vnd.order+json; charset=utf-8'],
    ] as const) {
      const key = newKey()
      const original = await send(`${url}${path}`, { key })
      const replay = await send(`${url}${path}`, { key })
      expect(original.headers.get('content-type')).toBe(type)
      expect(replay.headers.get('content-type')).toBe(type)
      expect(replay.body.equals(original.body)).toBe(true)
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
    }
  })

  it('refuses a route whose config.idempotency is not a boolean or route settings', async () => {
    const sqlite = openTemporarySqlite()
    const app = Fastify()
    cleanup = async () => {
      await app.close()
      await sqlite.close()
    }
    await app.register(fastifyIdempotency, {
      engine: createIdempotencyEngine({ store: sqlite.store }),
      scope: () => 'tenant',
    })
    expect(() =>
      app.post(
        '/orders',
        { config: { idempotency: { requried: true } as never } },
        () => 'never registered',
      ),
    ).toThrow(TypeError)
  })
})
