import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import type { Context } from 'hono'
import { createFetchIdempotency } from '@ticksupply/idempotency/fetch'
import type { ExampleStartOptions, RunningExample } from '../example-apps.js'
import { EXAMPLE_POLICY, createExampleEngine, exampleScope } from '../example-engine.js'
import {
  DELAY_HEADER,
  UNAUTHENTICATED,
  createTicksupplySubset,
  envelope,
  newRequestId,
  runOperation,
} from '../ticksupply-subset.js'

const JSON_TYPE = 'application/json; charset=utf-8'

type Env = { Variables: { account: string; requestId: string } }

/**
 * The Ticksupply subset on Hono (served by @hono/node-server), each mutating route's handler
 * wrapped by the fetch adapter as the engine's README quick start shows it: authentication in
 * a middleware, validation on a clone of the request before the wrapped handler (so that a 400
 * uses no key up), then the claim and the operation. The `answers-409-at-once` and
 * `compares-raw-keys` defects come through the engine and the scope (../example-engine.ts).
 */
export async function startFetchExample(options: ExampleStartOptions): Promise<RunningExample> {
  const { variant } = options
  const { engine, close } = createExampleEngine(variant)
  const subset = createTicksupplySubset({ apiKeys: options.apiKeys })
  const idempotency = createFetchIdempotency({
    engine,
    scope: (request: Request, c: Context<Env>) =>
      exampleScope(variant, c.get('account'), request.headers.get('idempotency-key') ?? undefined),
    requestId: (_request: Request, c: Context<Env>) => c.get('requestId'),
  })
  const app = new Hono<Env>()
  const json = (status: number, body: string) =>
    new Response(body, { status, headers: { 'content-type': JSON_TYPE } })

  app.use(async (c, next) => {
    const requestId = newRequestId()
    c.set('requestId', requestId)
    await next()
    c.res.headers.set('x-request-id', requestId)
  })
  app.get('/openapi.json', (c) => c.json(subset.openApiDocument(EXAMPLE_POLICY)))
  app.use('/v1/*', async (c, next) => {
    const account = subset.authenticate(c.req.header('x-api-key'))
    if (account === undefined) return json(401, envelope(UNAUTHENTICATED))
    c.set('account', account)
    return next()
  })

  for (const route of subset.routes) {
    const operation = async (request: Request, c: Context<Env>): Promise<Response> => {
      const text = await request.text()
      const outcome = await runOperation(
        route,
        {
          account: c.get('account'),
          params: c.req.param(),
          query: c.req.query(),
          body: text === '' ? undefined : JSON.parse(text),
        },
        request.headers.get(DELAY_HEADER) ?? undefined,
      )
      if (outcome.body === undefined) return new Response(null, { status: outcome.status })
      return new Response(JSON.stringify(outcome.body), {
        status: outcome.status,
        headers: { 'content-type': JSON_TYPE },
      })
    }
    const wrapped = route.method === 'GET' ? operation : idempotency.wrap(operation)
    app.on(route.method, route.path, async (c) => {
      if (route.method !== 'GET') {
        // The contract's steps 3 and 4, before the claim: the key's format, then the body's.
        const badKey = idempotency.checkKey(c.req.raw, c)
        if (badKey !== undefined) return badKey
        const text = await c.req.raw.clone().text()
        let body: unknown
        try {
          body = text === '' ? undefined : JSON.parse(text)
        } catch {
          return json(
            400,
            envelope({ status: 400, code: 'invalid_argument', message: 'Malformed JSON body' }),
          )
        }
        const invalid = route.validate?.(body)
        if (invalid !== undefined) return json(invalid.status, envelope(invalid))
      }
      return wrapped(c.req.raw, c)
    })
  }
  app.notFound(() =>
    json(404, envelope({ status: 404, code: 'not_found', message: 'Route not found' })),
  )

  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => {
    if (server.listening) resolve()
    else
      server.once('listening', () => {
        resolve()
      })
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${String(port)}`,
    close: async () => {
      ;(server as { closeAllConnections?: () => void }).closeAllConnections?.()
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve()
        })
      })
      close()
    },
  }
}
