import Fastify from 'fastify'
import type { FastifyError, FastifyRequest } from 'fastify'
import { isIdempotencyHttpError } from '@ticksupply/idempotency'
import { fastifyIdempotency } from '@ticksupply/idempotency/fastify'
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
import { storesAfterSending } from './stores-after-sending.js'

const JSON_TYPE = 'application/json; charset=utf-8'

function headerOf(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name]
  return Array.isArray(value) ? value[0] : value
}

/**
 * The Ticksupply subset on Fastify, behind `fastifyIdempotency` (the engine on its SQLite
 * store), as the engine's README quick start shows it. `options.variant` adds one defect:
 * `answers-409-at-once`, `waits-5-seconds`, `compares-raw-keys` and `keys-by-content-type`
 * through the engine and the scope (see ../example-engine.ts); `trims-the-body` through
 * `readRawBody`; `stores-after-sending` by a hand-written adapter in place of
 * `fastifyIdempotency` that stores the response once its bytes have left, as the peers'
 * `res.on('finish')` hooks do (./stores-after-sending.ts).
 *
 * It answers the suite's test hook {@link DELAY_HEADER}.
 */
export async function startFastifyExample(options: ExampleStartOptions): Promise<RunningExample> {
  const { variant } = options
  const { engine, close } = createExampleEngine(variant)
  const subset = createTicksupplySubset({ apiKeys: options.apiKeys })
  const app = Fastify({ genReqId: newRequestId })

  // JSON only, with the raw bytes kept for the fingerprint (the adapter's `readRawBody`).
  const rawBodies = new WeakMap<FastifyRequest, Buffer>()
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body
    rawBodies.set(request, bytes)
    if (bytes.length === 0) {
      done(null, undefined)
      return
    }
    try {
      done(null, JSON.parse(bytes.toString('utf8')))
    } catch {
      done(Object.assign(new Error('Malformed JSON body'), { statusCode: 400 }), undefined)
    }
  })
  // `trims-the-body` fingerprints the body without its surrounding whitespace.
  const readRawBody =
    variant === 'trims-the-body'
      ? (request: FastifyRequest) => {
          const bytes = rawBodies.get(request)
          return bytes === undefined ? undefined : Buffer.from(bytes.toString('utf8').trim())
        }
      : (request: FastifyRequest) => rawBodies.get(request)

  app.setErrorHandler((error: FastifyError, _request, reply) => {
    // The adapter's errors (400, 409, 503), rendered as the envelope.
    if (isIdempotencyHttpError(error)) {
      return reply.code(error.statusCode).headers(error.response.headers).send(error.response.body)
    }
    const status = error.statusCode !== undefined && error.statusCode < 500 ? error.statusCode : 500
    const body =
      status < 500
        ? { status, code: 'invalid_argument', message: error.message }
        : { status, code: 'internal', message: 'Internal error' }
    return reply.code(status).type(JSON_TYPE).send(envelope(body))
  })
  app.setNotFoundHandler((_request, reply) =>
    reply
      .code(404)
      .type(JSON_TYPE)
      .send(envelope({ status: 404, code: 'not_found', message: 'Route not found' })),
  )

  // The contract's order of checks: request id, authentication, then (the adapter's hooks) the
  // key format, body validation (preValidation below) and the claim.
  const accounts = new WeakMap<FastifyRequest, string>()
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })
  app.addHook('onRequest', (request, reply, done) => {
    if (request.routeOptions.url?.startsWith('/v1/') !== true) {
      done()
      return
    }
    const account = subset.authenticate(headerOf(request, 'x-api-key'))
    if (account === undefined) {
      void reply.code(401).type(JSON_TYPE).send(envelope(UNAUTHENTICATED))
      return
    }
    accounts.set(request, account)
    done()
  })
  const accountOf = (request: FastifyRequest) => accounts.get(request) ?? ''
  const scope = (request: FastifyRequest) =>
    exampleScope(
      variant,
      accountOf(request),
      headerOf(request, 'idempotency-key'),
      headerOf(request, 'content-type'),
    )
  await app.register(variant === 'stores-after-sending' ? storesAfterSending : fastifyIdempotency, {
    engine,
    scope,
    readRawBody,
  })

  app.get('/openapi.json', () => subset.openApiDocument(EXAMPLE_POLICY))
  for (const route of subset.routes) {
    app.route({
      method: route.method,
      url: route.path,
      preValidation: (request, reply, done) => {
        const invalid = route.validate?.(request.body)
        if (invalid === undefined) {
          done()
          return
        }
        void reply.code(invalid.status).type(JSON_TYPE).send(envelope(invalid))
      },
      handler: async (request, reply) => {
        const query: Record<string, string | undefined> = {}
        for (const [name, value] of Object.entries(request.query as Record<string, unknown>)) {
          query[name] = Array.isArray(value) ? String(value[0]) : String(value)
        }
        const outcome = await runOperation(
          route,
          {
            account: accountOf(request),
            params: request.params as Record<string, string>,
            query,
            body: request.body,
          },
          headerOf(request, DELAY_HEADER),
        )
        reply.code(outcome.status)
        if (outcome.body === undefined) return reply.send()
        return reply.type(JSON_TYPE).send(JSON.stringify(outcome.body))
      },
    })
  }

  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    url,
    close: async () => {
      await app.close()
      close()
    },
  }
}
