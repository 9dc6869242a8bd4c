import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import type { FastifyError, FastifyRequest } from 'fastify'
import { createIdempotencyEngine } from '@ticksupply/idempotency'
import { fastifyIdempotency } from '@ticksupply/idempotency/fastify'
import { createSqliteStore, openSqliteConnection } from '@ticksupply/idempotency/stores/sqlite'
import type { ExampleStartOptions, RunningExample } from '../example-apps.js'
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
const TTL_MS = 86_400_000
const CONTRACT_WAIT_MS = 3000

function headerOf(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name]
  return Array.isArray(value) ? value[0] : value
}

/**
 * The Ticksupply subset on Fastify, behind `fastifyIdempotency` (the engine on its SQLite
 * store), as the package README's quick start shows it; `options.variant` adds one defect:
 *
 * - `answers-409-at-once`: the engine's `waitMs` is 0, so a duplicate of a running request gets
 *   the "still in progress" 409 at once instead of waiting for the original;
 * - `compares-raw-keys`: the record is found by the header as sent, not by its canonical form
 *   (the scope carries the raw header text, as stores keyed `prefix:rawKey` do), so the four
 *   forms and letter cases of one UUID are four keys;
 * - `stores-after-sending`: a hand-written adapter in place of `fastifyIdempotency` stores the
 *   response once its bytes have left, as the peers' `res.on('finish')` hooks do
 *   (./stores-after-sending.ts).
 *
 * It answers the suite's test hook {@link DELAY_HEADER}.
 */
export async function startFastifyExample(options: ExampleStartOptions): Promise<RunningExample> {
  const { variant } = options
  const dir = mkdtempSync(join(tmpdir(), 'conformance-example-'))
  const connection = openSqliteConnection(join(dir, 'idempotency.db'))
  const store = createSqliteStore({ connection })
  const engine = createIdempotencyEngine({
    store,
    ttlMs: TTL_MS,
    waitMs: variant === 'answers-409-at-once' ? 0 : CONTRACT_WAIT_MS,
  })
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
  const readRawBody = (request: FastifyRequest) => rawBodies.get(request)

  app.setErrorHandler((error: FastifyError, _request, reply) => {
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
  const scope = (request: FastifyRequest) => accounts.get(request) ?? ''
  if (variant === 'stores-after-sending') {
    await app.register(storesAfterSending, { engine, scope, readRawBody })
  } else {
    await app.register(fastifyIdempotency, {
      engine,
      scope:
        variant === 'compares-raw-keys'
          ? (request) => `${scope(request)}\n${headerOf(request, 'idempotency-key') ?? ''}`
          : scope,
      readRawBody,
    })
  }

  app.get('/openapi.json', () =>
    subset.openApiDocument({ ttlMs: TTL_MS, waitMs: CONTRACT_WAIT_MS }),
  )
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
            account: scope(request),
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
      connection.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
