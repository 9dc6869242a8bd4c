/**
 * The adapters' options are validated when the adapter is set up, the same way on all three:
 * a misconfigured adapter fails at start with a TypeError naming the option, never with a 500
 * per request.
 */
import Fastify from 'fastify'
import { afterAll, describe, expect, it } from 'vitest'
import { createIdempotencyEngine } from '@ticksupply/idempotency'
import { expressIdempotency } from '@ticksupply/idempotency/express'
import { fastifyIdempotency } from '@ticksupply/idempotency/fastify'
import { createFetchIdempotency, withIdempotency } from '@ticksupply/idempotency/fetch'
import { openTemporarySqlite } from '../support/sqlite.js'
import { ADAPTERS } from '../support/toy-app.js'

const sqlite = openTemporarySqlite()
const engine = createIdempotencyEngine({ store: sqlite.store })

afterAll(() => sqlite.close())

/** Sets an adapter up with `options`; resolves once the setup is over, or rejects. */
async function setUp(adapter: (typeof ADAPTERS)[number], options: unknown): Promise<void> {
  // Deliberately wrong options, as a JavaScript caller could pass them.
  const given = options as never
  if (adapter === 'fastify') {
    const app = Fastify()
    try {
      await app.register(fastifyIdempotency, given)
      await app.ready()
    } finally {
      await app.close().catch(() => undefined)
    }
  } else if (adapter === 'express') {
    expressIdempotency(given)
  } else {
    withIdempotency(() => new Response(), given)
  }
}

const scope = () => 'tenant'

const bad: readonly [string, unknown, RegExp][] = [
  ['no options', undefined, /options|`engine`/],
  ['no engine', { scope }, /`engine`/],
  ['no scope', { engine }, /`scope`/],
  ['a scope that is a string', { engine, scope: 'tenant' }, /`scope`/],
  ['a skip that is not a function', { engine, scope, skip: true }, /`skip`/],
  [
    'a storeResponse that is not a function',
    { engine, scope, storeResponse: 200 },
    /`storeResponse`/,
  ],
  ['an onOutcome that is not a function', { engine, scope, onOutcome: 'log' }, /`onOutcome`/],
  ['a required that is not a boolean', { engine, scope, required: 'yes' }, /`required`/],
  [
    'storedHeaders that keep set-cookie',
    { engine, scope, storedHeaders: ['Set-Cookie'] },
    /set-cookie/,
  ],
  [
    'storedHeaders that keep x-request-id',
    { engine, scope, storedHeaders: ['x-request-id'] },
    /x-request-id/,
  ],
  [
    'storedHeaders with a name that is no header',
    { engine, scope, storedHeaders: ['a b'] },
    /`storedHeaders`/,
  ],
  [
    'storedHeaders that are a string',
    { engine, scope, storedHeaders: 'cache-control' },
    /`storedHeaders`/,
  ],
  [
    'a negative maxStoredBodyBytes',
    { engine, scope, maxStoredBodyBytes: -1 },
    /`maxStoredBodyBytes`/,
  ],
  [
    'a fractional maxStoredBodyBytes',
    { engine, scope, maxStoredBodyBytes: 1.5 },
    /`maxStoredBodyBytes`/,
  ],
  ['an unknown renderError', { engine, scope, renderError: 'html' }, /`renderError`/],
  [
    'a readRawBody that is not a function',
    { engine, scope, readRawBody: 'rawBody' },
    /`readRawBody`/,
  ],
]

describe.each(ADAPTERS)('setting up the %s adapter', (adapter) => {
  // A fetch handler gets its body from the Request: it has no readRawBody.
  const cases = adapter === 'fetch' ? bad.filter(([what]) => !what.includes('readRawBody')) : bad
  it.each(cases)('refuses %s with a TypeError naming it', async (_what, options, message) => {
    const setup = setUp(adapter, options)
    await expect(setup).rejects.toThrow(TypeError)
    await expect(setup).rejects.toThrow(message)
  })

  it('refuses route settings with a misspelt field, when the route is set up', async () => {
    const settings = { requried: true } as never
    const setUpRoute = async () => {
      if (adapter === 'fastify') {
        const app = Fastify()
        try {
          await app.register(fastifyIdempotency, { engine, scope })
          app.post('/orders', { config: { idempotency: settings } }, () => 'never')
        } finally {
          await app.close().catch(() => undefined)
        }
      } else if (adapter === 'express') {
        expressIdempotency({ engine, scope }).route(settings)
      } else {
        createFetchIdempotency({ engine, scope }).wrap(() => new Response(), settings)
      }
    }
    await expect(setUpRoute()).rejects.toThrow(TypeError)
    await expect(setUpRoute()).rejects.toThrow(/enabled\?: boolean, required\?: boolean/)
  })

  it('accepts every option at once', async () => {
    await expect(
      setUp(adapter, {
        engine,
        scope,
        required: true,
        skip: () => false,
        storeResponse: () => true,
        storedHeaders: ['Cache-Control', 'ETag'],
        maxStoredBodyBytes: 0,
        renderError: 'problem',
        onOutcome: () => undefined,
        onHookError: () => undefined,
        requestId: () => 'id',
      }),
    ).resolves.toBeUndefined()
  })
})
