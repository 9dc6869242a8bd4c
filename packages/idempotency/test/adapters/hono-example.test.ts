/** The README's Hono example, served by Hono's node server, and the fetch adapter's specifics. */
import { readFileSync } from 'node:fs'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { afterEach, describe, expect, it } from 'vitest'
import { createIdempotencyEngine } from '@ticksupply/idempotency'
import { createFetchIdempotency, withIdempotency } from '@ticksupply/idempotency/fetch'
import type { PostgresTransaction } from '@ticksupply/idempotency/stores/postgres'
import { newKey, send } from '../support/http.js'
import { openTemporarySqlite } from '../support/sqlite.js'
import { createOrderApp } from './hono-example.js'

let cleanup: (() => Promise<void>) | undefined

/** Holds code that only the compiler checks (its @ts-expect-error lines); never runs it. */
function compileOnly(code: (...args: never[]) => unknown): void {
  expect(code).toBeTypeOf('function')
}

afterEach(async () => {
  await cleanup?.()
  cleanup = undefined
})

/** `answer` (given its run's number, from 1) behind the adapter on a fresh SQLite store. */
function counted(answer: (run: number) => Response): {
  handler: (request: Request) => Promise<Response>
  runs: () => number
} {
  const sqlite = openTemporarySqlite()
  cleanup = () => sqlite.close()
  let runs = 0
  const handler = withIdempotency(() => answer(++runs), {
    engine: createIdempotencyEngine({ store: sqlite.store }),
    scope: () => 'tenant',
  })
  return { handler, runs: () => runs }
}

async function listen(fetch: (request: Request) => Response | Promise<Response>): Promise<string> {
  const server = serve({ fetch, hostname: '127.0.0.1', port: 0 }) as Server
  await new Promise<void>((resolve) => server.once('listening', resolve))
  const previous = cleanup
  cleanup = async () => {
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve()
      })
      server.closeAllConnections()
    })
    await previous?.()
  }
  return `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`
}

describe('the Hono example of the README', () => {
  it('is the code the README shows', () => {
    const example = readFileSync(new URL('hono-example.ts', import.meta.url), 'utf8')
    const region = /\/\/ #region readme\n([\s\S]*?)\/\/ #endregion readme/.exec(example)?.[1]
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
    expect(region).toBeDefined()
    expect(readme).toContain(region)
  })

  it('runs an order once per key and account, and replays it', async () => {
    const sqlite = openTemporarySqlite()
    cleanup = () => sqlite.close()
    let orders = 0
    const app = createOrderApp(sqlite.store, (body) => ({ id: ++orders, ...(body as object) }))
    const url = await listen(app.fetch)
    const key = newKey()
    const headers = { 'x-account': 'acme' }
    const original = await send(`${url}/orders`, { key, body: '{"item":"widget"}', headers })
    const replay = await send(`${url}/orders`, { key, body: '{"item":"widget"}', headers })
    expect(original.status).toBe(201)
    expect(JSON.parse(original.text)).toEqual({ id: 1, item: 'widget' })
    expect(replay.status).toBe(201)
    expect(replay.body.equals(original.body)).toBe(true)
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    const mismatch = await send(`${url}/orders`, { key, body: '{"item":"other"}', headers })
    expect(mismatch.status).toBe(409)
    const otherAccount = await send(`${url}/orders`, {
      key,
      body: '{"item":"widget"}',
      headers: { 'x-account': 'globex' },
    })
    expect(otherAccount.headers.get('idempotent-replayed')).toBeNull()
    expect((await send(`${url}/orders`, { key, body: '{}' })).status).toBe(401)
    expect(orders).toBe(2)
  })
})

describe('the fetch adapter', () => {
  it('passes a streamed body over maxStoredBodyBytes through whole, without storing it', async () => {
    const sqlite = openTemporarySqlite()
    cleanup = () => sqlite.close()
    let runs = 0
    const handler = withIdempotency(
      () => {
        runs++
        const encoder = new TextEncoder()
        let sent = 0
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sent++ === 10) controller.close()
            else controller.enqueue(encoder.encode('0123456789'))
          },
        })
        return new Response(body, { status: 200, headers: { 'content-type': 'text/plain' } })
      },
      {
        engine: createIdempotencyEngine({ store: sqlite.store }),
        scope: () => 'tenant',
        maxStoredBodyBytes: 25,
      },
    )
    const url = await listen(handler)
    const key = newKey()
    for (let i = 0; i < 2; i++) {
      const answer = await send(`${url}/stream`, { key })
      expect(answer.text).toBe('0123456789'.repeat(10))
      expect(answer.headers.get('idempotent-replayed')).toBeNull()
    }
    expect(runs).toBe(2)
  })

  it('hands a Response.error() on as it is and gives the key back: the retry runs', async () => {
    const { handler, runs } = counted((run) =>
      run === 1 ? Response.error() : new Response('made', { status: 201 }),
    )
    const key = newKey()
    const request = () =>
      new Request('http://127.0.0.1/jobs', { method: 'POST', headers: { 'idempotency-key': key } })
    const failed = await handler(request())
    expect([failed.type, failed.status]).toEqual(['error', 0])
    const retry = await handler(request())
    expect([retry.status, await retry.text()]).toEqual([201, 'made'])
    const replay = await handler(request())
    expect([replay.status, replay.headers.get('idempotent-replayed')]).toEqual([201, 'true'])
    expect(runs()).toBe(2)
  })

  it('frames a streamed answer it read whole itself: no Transfer-Encoding kept beside a Content-Length', async () => {
    const { handler, runs } = counted(() => {
      const encoder = new TextEncoder()
      const parts = ['t0', 't1']
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          const part = parts.shift()
          if (part === undefined) controller.close()
          else controller.enqueue(encoder.encode(part))
        },
      })
      // As Hono's streamText() answers.
      return new Response(body, {
        headers: { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' },
      })
    })
    const url = await listen(handler)
    const key = newKey()
    // Node's fetch refuses an answer with both framing headers.
    const original = await send(`${url}/stream`, { key })
    const replay = await send(`${url}/stream`, { key })
    expect([original.text, replay.text]).toEqual(['t0t1', 't0t1'])
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    expect(runs()).toBe(1)
  })

  it('answers and replays a response with no body without a Content-Type, as the handler gave it', async () => {
    const { handler, runs } = counted(() => Response.redirect('http://127.0.0.1/elsewhere', 303))
    const url = await listen(handler)
    const key = newKey()
    const original = await send(`${url}/moves`, { key })
    const replay = await send(`${url}/moves`, { key })
    expect([original.status, replay.status]).toEqual([303, 303])
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    expect([original.headers.get('content-type'), replay.headers.get('content-type')]).toEqual([
      null,
      null,
    ])
    expect(replay.headers.get('location')).toBe('http://127.0.0.1/elsewhere')
    expect(runs()).toBe(1)
  })

  it('replays with the Content-Type the server gave the original, where the handler set none', async () => {
    // Bytes: a Response gives them no Content-Type (a string would get text/plain).
    const { handler, runs } = counted(
      () => new Response(new TextEncoder().encode('made'), { status: 201 }),
    )
    const url = await listen(handler)
    const key = newKey()
    const original = await send(`${url}/jobs`, { key })
    const replay = await send(`${url}/jobs`, { key })
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    // @hono/node-server's default for a body without one.
    expect(original.headers.get('content-type')).toMatch(/^text\/plain/)
    expect(replay.headers.get('content-type')).toBe(original.headers.get('content-type'))
    expect(runs()).toBe(1)
  })

  it('takes only its store’s transaction in complete(), and gives the claim to the handler', async () => {
    const sqlite = openTemporarySqlite()
    cleanup = () => sqlite.close()
    const idempotency = createFetchIdempotency({
      engine: createIdempotencyEngine({ store: sqlite.store }),
      scope: () => 'tenant',
    })
    const claims: (string | null)[] = []
    const url = await listen(
      idempotency.wrap(async (request) => {
        claims.push(idempotency.claimOf(request)?.key ?? null)
        return sqlite.connection.transaction((tx) =>
          idempotency.complete(request, new Response('done', { status: 201 }), tx),
        )
      }),
    )
    const key = newKey()
    expect((await send(`${url}/jobs`, { key: key.toUpperCase() })).status).toBe(201)
    expect((await send(`${url}/jobs`, { key })).headers.get('idempotent-replayed')).toBe('true')
    expect((await send(`${url}/jobs`)).status).toBe(201)
    expect(claims).toEqual([key, null])
    const postgresTx = { afterCommit: () => undefined } as unknown as PostgresTransaction
    // Checked by the compiler (tsc -p tsconfig.test.json), never called.
    compileOnly((request: Request) =>
      // @ts-expect-error a PostgreSQL transaction is not the SQLite store's
      idempotency.complete(request, new Response(), postgresTx),
    )
  })
})
