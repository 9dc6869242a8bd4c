/**
 * The adapter contract (spec/idempotency.md), one table run over real HTTP on every adapter:
 * Fastify, Express, and a fetch handler served by Hono's node server. The peer bugs of shared
 * research (peer-measurements.md) are rows of it.
 */
import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import type { IdempotencyOutcome } from '@ticksupply/idempotency'
import type { Answer } from '../support/http.js'
import { newKey, send, sendAndAbandon, sendHeaderLines } from '../support/http.js'
import type { AdapterName, ToyApp, ToyAppOptions } from '../support/toy-app.js'
import { ADAPTERS, startToyApp } from '../support/toy-app.js'

const order = '{"item":"widget"}'

interface Row {
  readonly name: string
  readonly app?: Omit<ToyAppOptions, 'adapter'>
  readonly check: (app: ToyApp) => Promise<void>
}

const envelope = (answer: Answer): unknown => JSON.parse(answer.text)

const invalidKey = {
  error: { code: 'invalid_argument', message: 'Invalid idempotency key format' },
}
const mismatch = {
  error: {
    code: 'already_exists',
    message: 'Idempotency key reused with different request parameters',
  },
}
const inProgress = {
  error: { code: 'already_exists', message: 'Request is still in progress. Please retry later.' },
}

const hashOf = (key: string) => createHash('sha256').update(key).digest('hex').slice(0, 32)

/** Waits until `condition` holds, polling; for effects that land after an answer was sent. */
async function eventually(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await sleep(10)
  expect(condition()).toBe(true)
}

const rows: Row[] = [
  // The key.
  {
    name: 'treats the four forms and any letter case of one UUID as one key',
    async check(app) {
      const key = newKey()
      const hex = key.replaceAll('-', '')
      const forms = [key, key.toUpperCase(), hex, `{${key}}`, `URN:uuid:${key.toUpperCase()}`]
      for (const form of [...forms, ` ${key}\t`]) {
        expect((await send(`${app.url}/orders`, { key: form, body: order })).status).toBe(201)
      }
      expect(app.runs['POST /orders']).toBe(1)
    },
  },
  {
    name: 'refuses malformed keys with the 400 envelope, and nothing runs (peer bug 7)',
    async check(app) {
      const bad = [
        'order-12345',
        '"a1b2c3d4-e5f6-7890-abcd-ef1234567890"',
        'k'.repeat(200),
        '',
        '{a1b2c3d4-e5f6-7890-abcd-ef1234567890',
        'urn:uuid:',
        'g1b2c3d4-e5f6-7890-abcd-ef1234567890',
      ]
      for (const key of bad) {
        const answer = await send(`${app.url}/orders`, { key, body: order })
        expect(answer.status).toBe(400)
        expect(envelope(answer)).toEqual(invalidKey)
      }
      expect(app.runs['POST /orders']).toBeUndefined()
    },
  },
  {
    name: 'refuses a key sent on two header lines, even two equal ones',
    async check(app) {
      const key = newKey()
      const answer = await sendHeaderLines(
        `${app.url}/orders`,
        [
          'host',
          new URL(app.url).host,
          'content-type',
          'application/json',
          'idempotency-key',
          key,
          'Idempotency-Key',
          key,
        ],
        order,
      )
      expect(answer.status).toBe(400)
      expect(JSON.parse(answer.text)).toEqual(invalidKey)
      expect(app.runs['POST /orders']).toBeUndefined()
    },
  },
  {
    name: 'answers a bad key with its own 400 even when the body is invalid too, and nothing runs',
    async check(app) {
      // The key's format is checked before the body (the contract's order of checks).
      for (const body of ['{"wrong":1}', '{not json']) {
        const answer = await send(`${app.url}/orders`, { key: 'nope', body })
        expect(answer.status).toBe(400)
        expect(JSON.parse(answer.text)).toEqual({
          error: { code: 'invalid_argument', message: 'Invalid idempotency key format' },
        })
      }
      expect(app.runs['POST /orders']).toBeUndefined()
    },
  },
  {
    name: 'lets a request that fails validation leave the key unused: the fixed request runs',
    async check(app) {
      const key = newKey()
      expect((await send(`${app.url}/orders`, { key, body: '{"wrong":1}' })).status).toBe(400)
      const fixed = await send(`${app.url}/orders`, { key, body: order })
      expect(fixed.status).toBe(201)
      expect(fixed.headers.get('idempotent-replayed')).toBeNull()
      expect(app.runs['POST /orders']).toBe(1)
    },
  },

  // Mismatch.
  {
    name: 'answers 409 for another body, JSON bytes or query, and the original survives (peer bug 3)',
    async check(app) {
      const key = newKey()
      const original = await send(`${app.url}/orders`, { key, body: order })
      for (const body of ['{"item":"gadget"}', '{"item":"widget" }']) {
        const answer = await send(`${app.url}/orders`, { key, body })
        expect(answer.status).toBe(409)
        expect(envelope(answer)).toEqual(mismatch)
      }
      expect((await send(`${app.url}/orders?x=1`, { key, body: order })).status).toBe(409)
      const retry = await send(`${app.url}/orders`, { key, body: order })
      expect(retry.status).toBe(201)
      expect(retry.body.equals(original.body)).toBe(true)
      expect(app.runs['POST /orders']).toBe(1)
    },
  },

  // Replay fidelity.
  {
    name: 'replays status, bytes, content type and location, marked, under its own request id',
    async check(app) {
      const key = newKey()
      const original = await send(`${app.url}/orders`, { key, body: order })
      const replay = await send(`${app.url}/orders`, { key, body: order })
      expect(original.status).toBe(201)
      expect(original.headers.get('idempotent-replayed')).toBeNull()
      expect(replay.status).toBe(201)
      expect(replay.body.equals(original.body)).toBe(true)
      expect(JSON.parse(replay.text)).toEqual({ id: 1, item: 'widget' })
      expect(replay.headers.get('content-type')).toBe(original.headers.get('content-type'))
      expect(replay.headers.get('location')).toBe('/orders/1')
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
      expect(replay.headers.get('original-request')).toBe(original.headers.get('x-request-id'))
      expect(replay.headers.get('x-request-id')).not.toBe(original.headers.get('x-request-id'))
      // Headers nobody asked to keep are not replayed.
      expect(original.headers.get('cache-control')).toBe('no-store')
      expect(replay.headers.get('cache-control')).toBeNull()
      expect(replay.headers.get('x-order-version')).toBeNull()
      expect(app.runs['POST /orders']).toBe(1)
    },
  },
  {
    name: 'has the record stored when the answer arrives: a retry with no wait replays',
    app: { waitMs: 0 },
    async check(app) {
      for (let i = 0; i < 20; i++) {
        const key = newKey()
        expect((await send(`${app.url}/orders`, { key, body: order })).status).toBe(201)
        const retry = await send(`${app.url}/orders`, { key, body: order })
        expect(retry.headers.get('idempotent-replayed')).toBe('true')
      }
      expect(app.runs['POST /orders']).toBe(20)
    },
  },
  {
    name: 'replays with payload validation on: three identical requests, one run (peer bug 5)',
    async check(app) {
      const key = newKey()
      for (let i = 0; i < 3; i++) {
        expect((await send(`${app.url}/orders`, { key, body: order })).status).toBe(201)
      }
      expect(app.runs['POST /orders']).toBe(1)
    },
  },
  {
    name: 'replays the 204 of a DELETE as a bodyless 204',
    async check(app) {
      const key = newKey()
      expect((await send(`${app.url}/orders/7`, { method: 'DELETE', key })).status).toBe(204)
      const replay = await send(`${app.url}/orders/7`, { method: 'DELETE', key })
      expect(replay.status).toBe(204)
      expect(replay.body.byteLength).toBe(0)
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
      expect(app.runs['DELETE /orders/:id']).toBe(1)
    },
  },
  {
    name: 'stores a 404 the operation answered and replays it',
    async check(app) {
      const key = newKey()
      const original = await send(`${app.url}/missing`, { key })
      expect(original.status).toBe(404)
      const replay = await send(`${app.url}/missing`, { key })
      expect(replay.status).toBe(404)
      expect(replay.body.equals(original.body)).toBe(true)
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
      expect(app.runs['POST /missing']).toBe(1)
    },
  },
  {
    name: 'keeps scopes apart: the same key in another scope runs again',
    async check(app) {
      const key = newKey()
      await send(`${app.url}/orders`, { key, body: order, tenant: 'a' })
      const other = await send(`${app.url}/orders`, { key, body: order, tenant: 'b' })
      expect(other.headers.get('idempotent-replayed')).toBeNull()
      expect(app.runs['POST /orders']).toBe(2)
    },
  },
  {
    name: 'runs a POST without the header every time, and stores nothing',
    async check(app) {
      await send(`${app.url}/orders`, { body: order })
      const second = await send(`${app.url}/orders`, { body: order })
      expect(second.headers.get('idempotent-replayed')).toBeNull()
      expect(app.runs['POST /orders']).toBe(2)
    },
  },
  {
    name: 'ignores the header on PUT and GET, even an invalid one, and stores nothing',
    async check(app) {
      const key = newKey()
      for (let i = 0; i < 2; i++) {
        const put = await send(`${app.url}/orders/1`, { method: 'PUT', key, body: '{}' })
        expect(put.status).toBe(200)
        expect(put.headers.get('idempotent-replayed')).toBeNull()
        expect((await send(`${app.url}/orders`, { method: 'GET', key: 'garbage' })).status).toBe(
          200,
        )
      }
      expect(app.runs['PUT /orders/:id']).toBe(2)
      expect(app.runs['GET /orders']).toBe(2)
    },
  },

  // What is not stored.
  {
    name: 'releases the key of a handler that throws: the retry runs again (peer bug 4)',
    async check(app) {
      const key = newKey()
      expect((await send(`${app.url}/fail`, { key })).status).toBe(500)
      const retry = await send(`${app.url}/fail`, { key })
      expect(retry.status).toBe(500)
      expect(retry.text).not.toContain('in progress')
      expect(app.runs['POST /fail']).toBe(2)
    },
  },
  {
    name: 'releases the key of a response whose body fails mid-way: the retry runs again',
    async check(app) {
      const key = newKey()
      // However the framework ends it (a destroyed socket, a 500), nothing usable arrives.
      const attempt = () =>
        send(`${app.url}/broken-stream`, { key }).then(
          (answer) => answer.status,
          () => 'connection closed',
        )
      expect(await attempt()).not.toBe(200)
      const retry = await attempt()
      expect(retry).not.toBe(409)
      expect(app.runs['POST /broken-stream']).toBe(2)
    },
  },
  {
    name: 'releases the key after a 408: the retry runs again',
    async check(app) {
      const key = newKey()
      expect((await send(`${app.url}/timeout`, { key })).status).toBe(408)
      const retry = await send(`${app.url}/timeout`, { key })
      expect(retry.status).toBe(408)
      expect(retry.headers.get('idempotent-replayed')).toBeNull()
      expect(app.runs['POST /timeout']).toBe(2)
    },
  },

  // Waiting.
  {
    name: 'gives a duplicate of a running original the original answer, and it ran once',
    app: { delayMs: 300 },
    async check(app) {
      const key = newKey()
      const original = send(`${app.url}/orders`, { key, body: order })
      await sleep(50)
      const duplicate = await send(`${app.url}/orders`, { key, body: order })
      expect(duplicate.status).toBe(201)
      expect(duplicate.headers.get('idempotent-replayed')).toBe('true')
      expect(duplicate.body.equals((await original).body)).toBe(true)
      expect(app.runs['POST /orders']).toBe(1)
    },
  },
  {
    name: 'answers 409 with Retry-After: 1 when the original outlasts the wait',
    app: { delayMs: 600, waitMs: 100 },
    async check(app) {
      const key = newKey()
      const original = send(`${app.url}/orders`, { key, body: order })
      await sleep(50)
      const duplicate = await send(`${app.url}/orders`, { key, body: order })
      expect((await original).status).toBe(201)
      expect(duplicate.status).toBe(409)
      expect(duplicate.headers.get('retry-after')).toBe('1')
      expect(envelope(duplicate)).toEqual(inProgress)
      expect(app.runs['POST /orders']).toBe(1)
    },
  },
  {
    name: 'runs 200 concurrent requests with one key once (peer bug 1)',
    app: { delayMs: 200 },
    async check(app) {
      const key = newKey()
      const answers = await Promise.all(
        Array.from({ length: 200 }, () => send(`${app.url}/orders`, { key, body: order })),
      )
      expect(app.runs['POST /orders']).toBe(1)
      const created = answers.filter((answer) => answer.status === 201)
      const waitedOut = answers.filter((answer) => answer.status === 409)
      expect(created.length + waitedOut.length).toBe(200)
      for (const answer of created)
        expect(JSON.parse(answer.text)).toEqual({ id: 1, item: 'widget' })
      for (const answer of waitedOut) expect(envelope(answer)).toEqual(inProgress)
      expect(
        created.filter((answer) => answer.headers.get('idempotent-replayed') === 'true'),
      ).toHaveLength(created.length - 1)
    },
  },
  {
    name: 'never takes over the claim of a live original (peer bug 6)',
    app: { delayMs: 400, leaseMs: 30_000 },
    async check(app) {
      const key = newKey()
      const original = send(`${app.url}/orders`, { key, body: order })
      await sleep(50)
      const duplicates = await Promise.all(
        Array.from({ length: 20 }, () => send(`${app.url}/orders`, { key, body: order })),
      )
      expect((await original).status).toBe(201)
      expect(duplicates.every((answer) => answer.status === 201 || answer.status === 409)).toBe(
        true,
      )
      expect(app.runs['POST /orders']).toBe(1)
    },
  },

  // Disconnects.
  {
    name: 'never runs the operation again for clients that leave during a replay (peer bug 2)',
    async check(app) {
      const key = newKey()
      await send(`${app.url}/orders`, { key, body: order })
      await Promise.all(
        Array.from({ length: 200 }, () =>
          sendAndAbandon(`${app.url}/orders`, { key, body: order }),
        ),
      )
      expect((await send(`${app.url}/orders`, { key, body: order })).status).toBe(201)
      expect(app.runs['POST /orders']).toBe(1)
    },
  },
  {
    name: 'never runs the operation for duplicates that leave while they wait',
    app: { delayMs: 300 },
    async check(app) {
      const key = newKey()
      const original = send(`${app.url}/orders`, { key, body: order })
      await sleep(30)
      await Promise.all(
        Array.from({ length: 50 }, () =>
          sendAndAbandon(`${app.url}/orders`, { key, body: order, afterMs: 50 }),
        ),
      )
      expect((await original).status).toBe(201)
      const retry = await send(`${app.url}/orders`, { key, body: order })
      expect(retry.headers.get('idempotent-replayed')).toBe('true')
      expect(app.runs['POST /orders']).toBe(1)
    },
  },
  {
    name: 'completes the operation of a client that left while it ran: the retry gets the replay',
    app: { delayMs: 300 },
    async check(app) {
      const key = newKey()
      await sendAndAbandon(`${app.url}/orders`, { key, body: order, afterMs: 50 })
      const retry = await send(`${app.url}/orders`, { key, body: order })
      expect(retry.status).toBe(201)
      expect(retry.headers.get('idempotent-replayed')).toBe('true')
      expect(app.runs['POST /orders']).toBe(1)
    },
  },

  // The store.
  {
    name: 'fails closed with 503 when the store is down, and still serves unkeyed requests',
    async check(app) {
      app.breakStore()
      const keyed = await send(`${app.url}/orders`, { key: newKey(), body: order })
      expect(keyed.status).toBe(503)
      expect(keyed.headers.get('retry-after')).toBe('1')
      expect(envelope(keyed)).toMatchObject({ error: { code: 'unavailable' } })
      expect(app.runs['POST /orders']).toBeUndefined()
      expect((await send(`${app.url}/orders`, { body: order })).status).toBe(201)
      expect(app.runs['POST /orders']).toBe(1)
    },
  },

  // Completion inside the operation's transaction.
  {
    name: 'commits the operation and its stored response in one transaction: the retry replays',
    async check(app) {
      const key = newKey()
      const original = await send(`${app.url}/tx-orders`, { key, body: order })
      expect(original.status).toBe(201)
      expect(original.headers.get('content-type')).toMatch(/^application\/json/)
      const replay = await send(`${app.url}/tx-orders`, { key, body: order })
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
      expect(replay.body.equals(original.body)).toBe(true)
      expect(replay.headers.get('content-type')).toBe(original.headers.get('content-type'))
      expect(app.runs['POST /tx-orders']).toBe(1)
      expect(app.committedOrders()).toBe(1)
    },
  },
  {
    name: 'rolls the stored response back with the operation: the retry runs again',
    async check(app) {
      const key = newKey()
      expect((await send(`${app.url}/tx-orders?fail=1`, { key, body: order })).status).toBe(500)
      const retry = await send(`${app.url}/tx-orders?fail=1`, { key, body: order })
      expect(retry.status).toBe(500)
      expect(app.runs['POST /tx-orders']).toBe(2)
      expect(app.committedOrders()).toBe(0)
    },
  },

  // Options.
  {
    name: 'requires a key everywhere with required: true (GET still needs none)',
    app: { options: { required: true } },
    async check(app) {
      const missing = await send(`${app.url}/orders`, { body: order })
      expect(missing.status).toBe(400)
      expect(envelope(missing)).toEqual({
        error: { code: 'invalid_argument', message: 'Idempotency-Key header is required' },
      })
      expect(app.runs['POST /orders']).toBeUndefined()
      expect((await send(`${app.url}/orders`, { method: 'GET' })).status).toBe(200)
      expect((await send(`${app.url}/orders`, { key: newKey(), body: order })).status).toBe(201)
    },
  },
  {
    name: 'requires a key on a route that says so, and only there',
    async check(app) {
      const missing = await send(`${app.url}/orders-required`, { body: order })
      expect(missing.status).toBe(400)
      expect(envelope(missing)).toEqual({
        error: { code: 'invalid_argument', message: 'Idempotency-Key header is required' },
      })
      expect(app.runs['POST /orders-required']).toBeUndefined()
      const key = newKey()
      expect((await send(`${app.url}/orders-required`, { key, body: order })).status).toBe(201)
      expect((await send(`${app.url}/orders-required`, { key, body: order })).status).toBe(201)
      expect(app.runs['POST /orders-required']).toBe(1)
      expect((await send(`${app.url}/orders`, { body: order })).status).toBe(201)
    },
  },
  {
    name: 'ignores the header entirely on a route that opted out',
    async check(app) {
      for (const key of ['garbage', newKey()]) {
        const answer = await send(`${app.url}/unkeyed`, { key })
        expect(answer.status).toBe(201)
        expect(answer.headers.get('idempotent-replayed')).toBeNull()
      }
      expect(app.runs['POST /unkeyed']).toBe(2)
    },
  },
  {
    name: 'ignores the header on requests the skip predicate picks',
    app: { options: { skipMarked: true } },
    async check(app) {
      const skipped = { 'x-skip-idempotency': '1' }
      expect(
        (await send(`${app.url}/orders`, { key: 'garbage', body: order, headers: skipped })).status,
      ).toBe(201)
      const key = newKey()
      await send(`${app.url}/orders`, { key, body: order, headers: skipped })
      await send(`${app.url}/orders`, { key, body: order, headers: skipped })
      expect(app.runs['POST /orders']).toBe(3)
      expect((await send(`${app.url}/orders`, { key: 'garbage', body: order })).status).toBe(400)
    },
  },
  {
    name: 'stores only the responses storeResponse picks',
    app: { options: { storeResponse: (response) => response.status < 400 } },
    async check(app) {
      const key = newKey()
      await send(`${app.url}/missing`, { key })
      const again = await send(`${app.url}/missing`, { key })
      expect(again.headers.get('idempotent-replayed')).toBeNull()
      expect(app.runs['POST /missing']).toBe(2)
      const orderKey = newKey()
      await send(`${app.url}/orders`, { key: orderKey, body: order })
      const replay = await send(`${app.url}/orders`, { key: orderKey, body: order })
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
    },
  },
  {
    name: 'stores and replays the extra headers storedHeaders names, in any letter case',
    app: { options: { storedHeaders: ['Cache-Control', 'x-order-version'] } },
    async check(app) {
      const key = newKey()
      await send(`${app.url}/orders`, { key, body: order })
      await send(`${app.url}/orders`, { body: order })
      const replay = await send(`${app.url}/orders`, { key, body: order })
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
      expect(replay.headers.get('cache-control')).toBe('no-store')
      // The original's value, not the one the latest run sent.
      expect(replay.headers.get('x-order-version')).toBe('1')
      expect(replay.headers.get('location')).toBe('/orders/1')
    },
  },
  {
    name: 'renders errors as RFC 9457 problem details with renderError: problem',
    app: { options: { renderError: 'problem' } },
    async check(app) {
      const bad = await send(`${app.url}/orders`, { key: 'nope', body: order })
      expect(bad.status).toBe(400)
      expect(bad.headers.get('content-type')).toBe('application/problem+json; charset=utf-8')
      expect(JSON.parse(bad.text)).toEqual({
        type: 'about:blank',
        title: 'Bad Request',
        status: 400,
        detail: 'Invalid idempotency key format',
        code: 'invalid_argument',
      })
      const key = newKey()
      await send(`${app.url}/orders`, { key, body: order })
      const conflict = await send(`${app.url}/orders`, { key, body: '{"item":"other"}' })
      expect(conflict.status).toBe(409)
      expect(JSON.parse(conflict.text)).toMatchObject({ status: 409, code: 'already_exists' })
    },
  },
  {
    name: 'renders errors with a renderError function',
    app: {
      options: {
        renderError: (answer) => ({
          status: answer.status,
          headers: { ...answer.headers, 'content-type': 'text/plain; charset=utf-8' },
          body: `${answer.code}: ${answer.message}`,
        }),
      },
    },
    async check(app) {
      app.breakStore()
      const answer = await send(`${app.url}/orders`, { key: newKey(), body: order })
      expect(answer.status).toBe(503)
      expect(answer.headers.get('retry-after')).toBe('1')
      expect(answer.headers.get('content-type')).toBe('text/plain; charset=utf-8')
      expect(answer.text).toBe(
        'unavailable: The idempotency store is unavailable. Please retry later.',
      )
    },
  },
  {
    name: 'answers a body over maxStoredBodyBytes without storing it, and the retry runs again',
    app: { options: { maxStoredBodyBytes: 64 } },
    async check(app) {
      const warnings: Error[] = []
      const onWarning = (warning: Error) => warnings.push(warning)
      process.on('warning', onWarning)
      try {
        const key = newKey()
        for (let i = 0; i < 2; i++) {
          const answer = await send(`${app.url}/big?bytes=100`, { key })
          expect(answer.status).toBe(200)
          expect(answer.text).toBe('x'.repeat(100))
          expect(answer.headers.get('idempotent-replayed')).toBeNull()
        }
        expect(app.runs['POST /big']).toBe(2)
        const small = newKey()
        await send(`${app.url}/big?bytes=64`, { key: small })
        const replay = await send(`${app.url}/big?bytes=64`, { key: small })
        expect(replay.headers.get('idempotent-replayed')).toBe('true')
        expect(replay.text).toBe('x'.repeat(64))
        expect(app.runs['POST /big']).toBe(3)
        await eventually(() => warnings.length > 0)
        expect(warnings).toHaveLength(1)
        expect((warnings[0] as Error & { code?: string }).code).toBe(
          'TICKSUPPLY_IDEMPOTENCY_BODY_TOO_LARGE',
        )
      } finally {
        process.off('warning', onWarning)
      }
    },
  },
]

/** Outcomes the hook saw, and a gate that keeps every hook's promise pending until opened. */
const hook: { seen: IdempotencyOutcome[]; gate: Promise<void>; open: () => void } = {
  seen: [],
  gate: Promise.resolve(),
  open: () => undefined,
}
const hookErrors: unknown[] = []

rows.push(
  {
    name: 'reports outcomes with a hash of the key, never the key, without waiting for the hook',
    app: {
      options: {
        // An async hook that does not settle until the end of the test: answers never wait.
        onOutcome: (outcome) => {
          hook.seen.push(outcome)
          return hook.gate
        },
      },
    },
    async check(app) {
      const seen: IdempotencyOutcome[] = (hook.seen = [])
      hook.gate = new Promise((resolve) => {
        hook.open = resolve
      })
      const key = newKey()
      const hash = hashOf(key)
      await send(`${app.url}/orders`, { key, body: order })
      await send(`${app.url}/orders`, { key, body: order })
      await send(`${app.url}/orders`, { key, body: '{"item":"other"}' })
      const failKey = newKey()
      await send(`${app.url}/fail`, { key: failKey })
      await send(`${app.url}/orders`, { key: 'nope', body: order })
      await eventually(() => seen.length === 5)
      expect(seen.map((outcome) => outcome.type)).toEqual([
        'stored',
        'replayed',
        'rejected',
        'not_stored',
        'rejected',
      ])
      expect(seen[0]).toEqual({
        type: 'stored',
        status: 201,
        keyHash: hash,
        scope: 'default',
        method: 'POST',
        path: '/orders',
      })
      expect(seen[2]).toMatchObject({ code: 'fingerprint_mismatch', status: 409, keyHash: hash })
      // Fastify and Express see the 500 the app's error handler made of the throw; a fetch
      // handler's throw goes on to the caller.
      expect(seen[3]).toMatchObject({ type: 'not_stored', path: '/fail', keyHash: hashOf(failKey) })
      expect([
        { reason: 'status', status: 500 },
        { reason: 'threw', status: undefined },
      ]).toContainEqual({ reason: (seen[3] as { reason: string }).reason, status: seen[3]?.status })
      expect(seen[4]).toMatchObject({ code: 'key_invalid', status: 400, keyHash: null })
      const text = JSON.stringify(seen)
      for (const form of [key, key.replaceAll('-', ''), failKey, failKey.replaceAll('-', '')]) {
        expect(text).not.toContain(form)
      }
      hook.open()
    },
  },
  {
    name: 'keeps answers unchanged when the outcome hook throws or rejects',
    app: {
      options: {
        onOutcome: (outcome) => {
          if (outcome.type === 'stored') throw new Error('the hook broke')
          return Promise.reject(new Error('the hook broke later'))
        },
        onHookError: (error) => {
          hookErrors.push(error)
        },
      },
    },
    async check(app) {
      hookErrors.length = 0
      const key = newKey()
      expect((await send(`${app.url}/orders`, { key, body: order })).status).toBe(201)
      const replay = await send(`${app.url}/orders`, { key, body: order })
      expect(replay.status).toBe(201)
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
      await eventually(() => hookErrors.length === 2)
      expect(app.runs['POST /orders']).toBe(1)
    },
  },
)

describe.each(ADAPTERS)('the %s adapter', (adapter: AdapterName) => {
  let app: ToyApp | undefined

  afterEach(async () => {
    await app?.close()
    app = undefined
  })

  it.each(rows)('$name', async (row) => {
    app = await startToyApp({ ...row.app, adapter })
    await row.check(app)
  })
})
