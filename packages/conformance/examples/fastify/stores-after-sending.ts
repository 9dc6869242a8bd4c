import type {
  FastifyPluginCallback,
  FastifyReply,
  FastifyRequest,
  RouteOptions,
  onRequestHookHandler,
  onSendHookHandler,
  preHandlerHookHandler,
} from 'fastify'
import fp from 'fastify-plugin'
import type {
  ActiveClaim,
  IdempotencyEngine,
  StoreTransaction,
  StoredResponse,
} from '@ticksupply/idempotency'
import {
  headerValues,
  isIdempotencyError,
  parseIdempotencyKeyHeader,
  renderErrorEnvelope,
  toIdempotencyErrorResponse,
} from '@ticksupply/idempotency'

/**
 * DELIBERATELY BROKEN: an idempotency adapter written the way the npm peers write theirs. It
 * parses the key, claims, replays and waits through the real engine, exactly as
 * `fastifyIdempotency` does, but it stores the response in the response's `finish` event,
 * after the bytes have left, and gives the key back when they could not leave. A client that
 * disconnects while its operation runs therefore finds no stored response when it retries, and
 * the operation runs a second time. The contract: "A client that disconnects while its own
 * operation runs does not stop the operation from completing and storing its response".
 */
interface StoresAfterSendingOptions {
  readonly engine: IdempotencyEngine<StoreTransaction>
  readonly scope: (request: FastifyRequest) => string
  readonly readRawBody: (request: FastifyRequest) => Uint8Array | undefined
}

const JSON_TYPE = 'application/json; charset=utf-8'
const KEYED = new Set(['POST', 'DELETE'])

interface RequestState {
  key: string | null
  claim: ActiveClaim<StoreTransaction> | null
}

const plugin: FastifyPluginCallback<StoresAfterSendingOptions> = (app, options, done) => {
  const { engine, scope, readRawBody } = options
  const states = new WeakMap<FastifyRequest, RequestState>()
  const stateOf = (request: FastifyRequest) => {
    const state = states.get(request) ?? { key: null, claim: null }
    states.set(request, state)
    return state
  }

  const sendError = (reply: FastifyReply, error: unknown) => {
    if (!isIdempotencyError(error)) return reply.send(error)
    const mapped = toIdempotencyErrorResponse(error)
    return reply
      .code(mapped.status)
      .headers(mapped.headers)
      .type(JSON_TYPE)
      .send(renderErrorEnvelope(mapped.code, mapped.message))
  }

  const onRequest: onRequestHookHandler = (request, reply, next) => {
    try {
      stateOf(request).key = parseIdempotencyKeyHeader(
        headerValues(request.raw.rawHeaders, 'idempotency-key'),
      )
    } catch (error) {
      void sendError(reply, error)
      return
    }
    next()
  }

  const preHandler: preHandlerHookHandler = (request, reply, next) => {
    const state = stateOf(request)
    if (state.key === null) {
      next()
      return
    }
    engine
      .begin({
        scope: scope(request),
        key: state.key,
        method: request.method,
        pathWithQuery: request.url,
        body: readRawBody(request) ?? new Uint8Array(0),
      })
      .then(
        (begun) => {
          if (begun.kind === 'replay') {
            const { response } = begun
            reply.code(response.status)
            for (const [name, value] of Object.entries(response.headers)) reply.header(name, value)
            void reply
              .header('idempotent-replayed', 'true')
              .header('original-request', response.requestId)
              .send(Buffer.from(response.body))
            return
          }
          state.claim = begun.claim
          next()
        },
        (error: unknown) => {
          void sendError(reply, error)
        },
      )
  }

  // THE DEFECT: the response is captured here, before it is written, but stored only once the
  // write has finished; a response that could not be written gives the key back.
  const onSend: onSendHookHandler = (request, reply, payload, next) => {
    const claim = stateOf(request).claim
    if (claim === null || claim.settled) {
      next(null, payload)
      return
    }
    const contentType = reply.getHeader('content-type')
    const captured: StoredResponse = {
      status: reply.statusCode,
      headers: contentType === undefined ? {} : { 'content-type': String(contentType) },
      body:
        typeof payload === 'string'
          ? Buffer.from(payload)
          : ((payload as Buffer | null) ?? new Uint8Array(0)),
      requestId: request.id,
    }
    const response = reply.raw
    if (response.destroyed) {
      void claim.release()
    } else {
      response.once('finish', () => void claim.finish(captured))
      response.once('close', () => {
        if (!response.writableFinished) void claim.release()
      })
    }
    next(null, payload)
  }

  app.addHook('onRoute', (route: RouteOptions) => {
    if (![route.method].flat().some((method) => KEYED.has(method))) return
    route.onRequest = [...[route.onRequest ?? []].flat(), onRequest]
    route.preHandler = [...[route.preHandler ?? []].flat(), preHandler]
    route.onSend = [...[route.onSend ?? []].flat(), onSend]
  })
  done()
}

export const storesAfterSending = fp(plugin, { fastify: '5.x', name: 'stores-after-sending' })
