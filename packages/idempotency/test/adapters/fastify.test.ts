import Fastify from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { createIdempotencyEngine } from '@ticksupply/idempotency'
import { fastifyIdempotency } from '@ticksupply/idempotency/fastify'
import { openTemporarySqlite } from '../support/sqlite.js'
import type { ToyApp } from '../support/toy-app.js'
import { startToyApp } from '../support/toy-app.js'
import { newKey, send } from '../support/http.js'

const order = '{"item":"widget"}'
let app: ToyApp | undefined

afterEach(async () => {
  await app?.close()
  app = undefined
})

describe('Fastify adapter', () => {
  it('replays the stored answer byte for byte, with its headers and the replay markers', async () => {
    app = await startToyApp()
    const key = newKey()
    const original = await send(`${app.url}/orders`, { key, body: order })
    const replay = await send(`${app.url}/orders`, { key, body: order })
    expect(original.status).toBe(201)
    expect(original.headers.get('idempotent-replayed')).toBeNull()
    expect(replay.status).toBe(201)
    expect(replay.body.equals(original.body)).toBe(true)
    expect(replay.headers.get('content-type')).toBe(original.headers.get('content-type'))
    expect(replay.headers.get('location')).toBe('/orders/1')
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    expect(replay.headers.get('original-request')).toBe('req-1')
    expect(app.runs['POST /orders']).toBe(1)
  })

  it('treats the four forms and any letter case of one UUID as the same key', async () => {
    app = await startToyApp()
    const key = newKey()
    const hex = key.replaceAll('-', '')
    for (const form of [key, key.toUpperCase(), hex, `{${key}}`, `URN:uuid:${key.toUpperCase()}`]) {
      expect((await send(`${app.url}/orders`, { key: form, body: order })).status).toBe(201)
    }
    expect(app.runs['POST /orders']).toBe(1)
  })

  it('answers a bad key with 400 before the handler or the body validation', async () => {
    app = await startToyApp()
    const answer = await send(`${app.url}/orders`, { key: 'not-a-uuid', body: '{"wrong":1}' })
    expect(answer.status).toBe(400)
    expect(JSON.parse(answer.text)).toEqual({
      error: { code: 'invalid_argument', message: 'Invalid idempotency key format' },
    })
    expect(app.runs['POST /orders']).toBeUndefined()
  })

  it('answers a mismatch with 409 and keeps the original for its genuine retry', async () => {
    app = await startToyApp()
    const key = newKey()
    await send(`${app.url}/orders`, { key, body: order })
    const mismatch = await send(`${app.url}/orders`, { key, body: '{"item":"gadget"}' })
    expect(mismatch.status).toBe(409)
    expect(JSON.parse(mismatch.text)).toEqual({
      error: {
        code: 'already_exists',
        message: 'Idempotency key reused with different request parameters',
      },
    })
    const retry = await send(`${app.url}/orders`, { key, body: order })
    expect(retry.status).toBe(201)
    expect(JSON.parse(retry.text)).toEqual({ id: 1, item: 'widget' })
  })

  it('stores a 404 and replays it', async () => {
    app = await startToyApp()
    const key = newKey()
    expect((await send(`${app.url}/missing`, { key })).status).toBe(404)
    const replay = await send(`${app.url}/missing`, { key })
    expect(replay.status).toBe(404)
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    expect(app.runs['POST /missing']).toBe(1)
  })

  it('releases the key after a 500, so that the retry runs again', async () => {
    app = await startToyApp()
    const key = newKey()
    expect((await send(`${app.url}/fail`, { key })).status).toBe(500)
    expect((await send(`${app.url}/fail`, { key })).status).toBe(500)
    expect(app.runs['POST /fail']).toBe(2)
  })

  it('replays a 204 for DELETE', async () => {
    app = await startToyApp()
    const key = newKey()
    expect((await send(`${app.url}/orders/7`, { method: 'DELETE', key })).status).toBe(204)
    const replay = await send(`${app.url}/orders/7`, { method: 'DELETE', key })
    expect(replay.status).toBe(204)
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    expect(app.runs['DELETE /orders/:id']).toBe(1)
  })

  it('ignores the header on PUT and GET, even an invalid one, and stores nothing', async () => {
    app = await startToyApp()
    const key = newKey()
    for (let i = 0; i < 2; i++) {
      expect((await send(`${app.url}/orders/1`, { method: 'PUT', key, body: '{}' })).status).toBe(
        200,
      )
      expect((await send(`${app.url}/orders`, { method: 'GET', key: 'garbage' })).status).toBe(200)
    }
    expect(app.runs['PUT /orders/:id']).toBe(2)
    expect(app.runs['GET /orders']).toBe(2)
  })

  it('runs an unkeyed POST every time', async () => {
    app = await startToyApp()
    await send(`${app.url}/orders`, { body: order })
    await send(`${app.url}/orders`, { body: order })
    expect(app.runs['POST /orders']).toBe(2)
  })

  it('keeps tenants apart: the same key in another scope runs again', async () => {
    app = await startToyApp()
    const key = newKey()
    await send(`${app.url}/orders`, { key, body: order, tenant: 'a' })
    const other = await send(`${app.url}/orders`, { key, body: order, tenant: 'b' })
    expect(other.headers.get('idempotent-replayed')).toBeNull()
    expect(app.runs['POST /orders']).toBe(2)
  })

  it('fails closed with 503 when the store is down, and still serves unkeyed requests', async () => {
    app = await startToyApp()
    app.breakStore()
    const keyed = await send(`${app.url}/orders`, { key: newKey(), body: order })
    expect(keyed.status).toBe(503)
    expect(JSON.parse(keyed.text)).toMatchObject({ error: { code: 'unavailable' } })
    expect(app.runs['POST /orders']).toBeUndefined()
    expect((await send(`${app.url}/orders`, { body: order })).status).toBe(201)
    expect(app.runs['POST /orders']).toBe(1)
  })

  it('waits for the original and replays its answer to the duplicate', async () => {
    app = await startToyApp({ delayMs: 300 })
    const key = newKey()
    const original = send(`${app.url}/orders`, { key, body: order })
    await new Promise((resolve) => setTimeout(resolve, 50))
    const duplicate = await send(`${app.url}/orders`, { key, body: order })
    expect(duplicate.status).toBe(201)
    expect(duplicate.headers.get('idempotent-replayed')).toBe('true')
    expect(duplicate.body.equals((await original).body)).toBe(true)
    expect(app.runs['POST /orders']).toBe(1)
  })

  it('answers 409 with Retry-After: 1 when the original outlasts the wait', async () => {
    app = await startToyApp({ delayMs: 600, waitMs: 100 })
    const key = newKey()
    const original = send(`${app.url}/orders`, { key, body: order })
    await new Promise((resolve) => setTimeout(resolve, 50))
    const duplicate = await send(`${app.url}/orders`, { key, body: order })
    expect(duplicate.status).toBe(409)
    expect(duplicate.headers.get('retry-after')).toBe('1')
    expect(JSON.parse(duplicate.text)).toEqual({
      error: {
        code: 'already_exists',
        message: 'Request is still in progress. Please retry later.',
      },
    })
    expect((await original).status).toBe(201)
    expect(app.runs['POST /orders']).toBe(1)
  })
})

describe('Fastify adapter with readRawBody', () => {
  it('refuses a body the parser did not keep rather than fingerprint without it', async () => {
    const { store, close } = openTemporarySqlite()
    const server = Fastify()
    let runs = 0
    try {
      await server.register(fastifyIdempotency, {
        engine: createIdempotencyEngine({ store }),
        scope: () => 'tenant',
        // A parser that forgot to keep the bytes.
        readRawBody: () => undefined,
      })
      server.post('/orders', async (_request, reply) => {
        runs++
        return reply.code(201).send({ ok: true })
      })
      const url = await server.listen({ host: '127.0.0.1', port: 0 })
      const answer = await send(`${url}/orders`, { key: newKey(), body: order })
      expect(answer.status).toBe(500)
      expect(runs).toBe(0)
      // Without a body there is nothing to leave out: the request runs.
      expect((await send(`${url}/orders`, { key: newKey() })).status).toBe(201)
      expect(runs).toBe(1)
    } finally {
      await server.close()
      await close()
    }
  })
})
