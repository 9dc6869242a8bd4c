import type { AddressInfo } from 'node:net'
import express from 'express'
import type { NextFunction, Request, Response } from 'express'
import { isIdempotencyHttpError } from '@ticksupply/idempotency'
import { expressIdempotency, keepRawBody } from '@ticksupply/idempotency/express'
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

type AppRequest = Request & { account?: string }

const headerOf = (request: Request, name: string): string | undefined => {
  const value = request.headers[name]
  return Array.isArray(value) ? value[0] : value
}

/**
 * The Ticksupply subset on Express 5, behind `expressIdempotency`, as the engine's README
 * quick start shows it: authentication, the JSON parser keeping the raw bytes, each route's
 * validation, then the middleware, then the handler. The `answers-409-at-once` and
 * `compares-raw-keys` defects come through the engine and the scope (../example-engine.ts).
 */
export async function startExpressExample(options: ExampleStartOptions): Promise<RunningExample> {
  const { variant } = options
  const { engine, close } = createExampleEngine(variant)
  const subset = createTicksupplySubset({ apiKeys: options.apiKeys })
  const app = express()

  // The contract's order of checks: request id, authentication, key format and body
  // validation, then the claim.
  app.use((_request, response, next) => {
    response.setHeader('x-request-id', newRequestId())
    next()
  })
  app.get('/openapi.json', (_request, response) => {
    response.json(subset.openApiDocument(EXAMPLE_POLICY))
  })
  app.use('/v1', (request: AppRequest, response, next) => {
    const account = subset.authenticate(headerOf(request, 'x-api-key'))
    if (account === undefined) {
      response.status(401).type(JSON_TYPE).send(envelope(UNAUTHENTICATED))
      return
    }
    request.account = account
    next()
  })
  const idempotency = expressIdempotency({
    engine,
    scope: (request: AppRequest) =>
      exampleScope(variant, request.account ?? '', headerOf(request, 'idempotency-key')),
  })
  // The key's format before the body's: the contract's order of checks.
  app.use(idempotency.checkKey)
  app.use(express.json({ verify: keepRawBody }))

  for (const route of subset.routes) {
    const validate = (request: Request, response: Response, next: NextFunction) => {
      const invalid = route.validate?.(request.body)
      if (invalid === undefined) {
        next()
        return
      }
      response.status(invalid.status).type(JSON_TYPE).send(envelope(invalid))
    }
    const handle = async (request: AppRequest, response: Response) => {
      const query: Record<string, string | undefined> = {}
      for (const [name, value] of Object.entries(request.query)) {
        const first: unknown = Array.isArray(value) ? value[0] : value
        query[name] = typeof first === 'string' ? first : undefined
      }
      const outcome = await runOperation(
        route,
        {
          account: request.account ?? '',
          params: request.params as Record<string, string>,
          query,
          body: request.body,
        },
        headerOf(request, DELAY_HEADER),
      )
      response.status(outcome.status)
      if (outcome.body === undefined) response.end()
      else response.type(JSON_TYPE).send(JSON.stringify(outcome.body))
    }
    const method = route.method.toLowerCase() as 'get' | 'post' | 'put' | 'delete'
    app[method](route.path, validate, idempotency, handle)
  }

  app.use((_request, response) => {
    response
      .status(404)
      .type(JSON_TYPE)
      .send(envelope({ status: 404, code: 'not_found', message: 'Route not found' }))
  })
  app.use((error: unknown, _request: Request, response: Response, next: NextFunction) => {
    if (response.headersSent) {
      next(error)
      return
    }
    // The adapter's errors (400, 409, 503), rendered as the envelope.
    if (isIdempotencyHttpError(error)) {
      response.status(error.statusCode).set(error.response.headers).send(error.response.body)
      return
    }
    const status = (error as { status?: unknown }).status
    const body =
      typeof status === 'number' && status < 500
        ? { status, code: 'invalid_argument', message: 'Malformed JSON body' }
        : { status: 500, code: 'internal', message: 'Internal error' }
    response.status(body.status).type(JSON_TYPE).send(envelope(body))
  })

  const server = app.listen(0, '127.0.0.1')
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${String(port)}`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve()
        })
      })
      close()
    },
  }
}
