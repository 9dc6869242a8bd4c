/**
 * The six bugs of the npm peers reproduced in shared research (peer-measurements.md), plus the
 * seventh finding, each as a test this adapter must pass.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { ToyApp } from '../support/toy-app.js'
import { startToyApp } from '../support/toy-app.js'
import { newKey, send, sendAndAbandon } from '../support/http.js'

const order = '{"item":"widget"}'
let app: ToyApp | undefined

afterEach(async () => {
  await app?.close()
  app = undefined
})

describe('peer bugs we must not have', () => {
  it('1. read-then-write claim: 200 concurrent requests with one key run the handler once', async () => {
    app = await startToyApp({ delayMs: 200 })
    const key = newKey()
    const answers = await Promise.all(
      Array.from({ length: 200 }, () => send(`${app!.url}/orders`, { key, body: order })),
    )
    expect(app.runs['POST /orders']).toBe(1)
    const created = answers.filter((answer) => answer.status === 201)
    const inProgress = answers.filter((answer) => answer.status === 409)
    expect(created.length + inProgress.length).toBe(200)
    // The original, and every duplicate that was woken in time, carry the one order.
    for (const answer of created) expect(JSON.parse(answer.text)).toEqual({ id: 1, item: 'widget' })
    for (const answer of inProgress) expect(answer.text).toContain('Request is still in progress')
    expect(
      created.filter((answer) => answer.headers.get('idempotent-replayed') === 'true'),
    ).toHaveLength(created.length - 1)
  })

  it('2. a client that disconnects during a replay never makes the handler run again', async () => {
    app = await startToyApp()
    const key = newKey()
    await send(`${app.url}/orders`, { key, body: order })
    await Promise.all(
      Array.from({ length: 200 }, () => sendAndAbandon(`${app!.url}/orders`, { key, body: order })),
    )
    // Also while waiting: abandon duplicates of an original that is still running.
    const slow = await startToyApp({ delayMs: 300 })
    try {
      const slowKey = newKey()
      const original = send(`${slow.url}/orders`, { key: slowKey, body: order })
      await new Promise((resolve) => setTimeout(resolve, 30))
      await Promise.all(
        Array.from({ length: 50 }, () =>
          sendAndAbandon(`${slow.url}/orders`, { key: slowKey, body: order, afterMs: 50 }),
        ),
      )
      expect((await original).status).toBe(201)
      expect(slow.runs['POST /orders']).toBe(1)
    } finally {
      await slow.close()
    }
    expect(app.runs['POST /orders']).toBe(1)
  })

  it('3. a mismatched request never overwrites the stored original', async () => {
    app = await startToyApp()
    const key = newKey()
    const original = await send(`${app.url}/orders`, { key, body: order })
    for (const body of ['{"item":"gadget"}', '{"item":"widget" }']) {
      expect((await send(`${app.url}/orders`, { key, body })).status).toBe(409)
    }
    expect((await send(`${app.url}/orders?x=1`, { key, body: order })).status).toBe(409)
    const retry = await send(`${app.url}/orders`, { key, body: order })
    expect(retry.status).toBe(201)
    expect(retry.body.equals(original.body)).toBe(true)
    expect(app.runs['POST /orders']).toBe(1)
  })

  it('4. a throwing handler never leaves the key stuck', async () => {
    app = await startToyApp()
    const key = newKey()
    expect((await send(`${app.url}/fail`, { key })).status).toBe(500)
    const retry = await send(`${app.url}/fail`, { key })
    expect(retry.status).toBe(500)
    expect(retry.text).not.toContain('in progress')
    expect(app.runs['POST /fail']).toBe(2)
  })

  it('5. replay works with payload validation on (the fingerprint is kept with the record)', async () => {
    app = await startToyApp()
    const key = newKey()
    for (let i = 0; i < 3; i++)
      expect((await send(`${app.url}/orders`, { key, body: order })).status).toBe(201)
    expect(app.runs['POST /orders']).toBe(1)
    // And a different body never silently gets the original's answer.
    expect((await send(`${app.url}/orders`, { key, body: '{"item":"other"}' })).status).toBe(409)
  })

  it('6. an in-progress record with a live lease is never taken over', async () => {
    app = await startToyApp({ delayMs: 400, leaseMs: 30_000 })
    const key = newKey()
    const original = send(`${app.url}/orders`, { key, body: order })
    await new Promise((resolve) => setTimeout(resolve, 50))
    const duplicates = await Promise.all(
      Array.from({ length: 20 }, () => send(`${app!.url}/orders`, { key, body: order })),
    )
    expect((await original).status).toBe(201)
    expect(duplicates.every((answer) => answer.status === 201 || answer.status === 409)).toBe(true)
    expect(app.runs['POST /orders']).toBe(1)
  })

  it.each([
    ['a free-form string', 'order-12345'],
    ['a quoted UUID', '"a1b2c3d4-e5f6-7890-abcd-ef1234567890"'],
    ['a 200-character key', 'k'.repeat(200)],
  ])('7. refuses %s as a key', async (_what, key) => {
    app = await startToyApp()
    expect((await send(`${app.url}/orders`, { key, body: order })).status).toBe(400)
    expect(app.runs['POST /orders']).toBeUndefined()
  })
})
