import { Transform } from 'node:stream'
import type { TransformCallback } from 'node:stream'
import type {
  FastifyInstance,
  FastifyPluginCallback,
  FastifyReply,
  onRequestHookHandler,
  onResponseHookHandler,
  onSendHookHandler,
  preHandlerHookHandler,
  preParsingHookHandler,
  FastifyRequest,
  RouteOptions,
} from 'fastify'
import fp from 'fastify-plugin'
import type { ActiveClaim, IdempotencyEngine } from '../core/engine.js'
import { toIdempotencyErrorResponse, renderErrorEnvelope } from '../core/error-response.js'
import { isIdempotencyError } from '../core/errors.js'
import { headerValues, parseIdempotencyKeyHeader } from '../core/key.js'
import type { StoredResponse } from '../core/record.js'
import { STORED_HEADER_NAMES } from '../core/record.js'
import type { StoreTransaction } from '../core/store.js'

export interface FastifyIdempotencyOptions {
  /** The engine that claims, replays and waits. */
  readonly engine: IdempotencyEngine<StoreTransaction>
  /**
   * The scope a request's keys belong to (the account). Runs after the app's own `onRequest`
   * hooks registered before this plugin, so authentication has run.
   */
  readonly scope: (request: FastifyRequest) => string
  /**
   * The request's raw body bytes, where the app's content-type parsers keep them (read as a
   * buffer, then parsed). Without it the adapter tees the body stream of keyed requests in
   * `preParsing`, which costs a stream per request. Must answer for every request that has a
   * body; `undefined` means "no body".
   * @default undefined (tee the stream)
   */
  readonly readRawBody?: (request: FastifyRequest) => Uint8Array | undefined
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * `false` makes a POST or DELETE route ignore `Idempotency-Key`.
     * @default true
     */
    idempotency?: boolean
  }
  interface FastifyRequest {
    /** The canonical key of a keyed POST or DELETE; `null` when the request is not keyed. */
    idempotencyKey: string | null
    /** The claim the request holds while its handler runs; `null` when it holds none. */
    idempotencyClaim: ActiveClaim<StoreTransaction> | null
  }
}

const KEYED_METHODS = new Set(['POST', 'DELETE'])
const kBody = Symbol('idempotency.body')

interface AdapterState {
  [kBody]?: Buffer[]
}

/**
 * Makes every POST and DELETE route registered after it honour `Idempotency-Key`:
 *
 * - `onRequest`: parses the key (a bad one answers 400 before the body is read);
 * - `preParsing`: keeps the raw body bytes for the fingerprint as they stream by;
 * - `preHandler`: claims, replays or waits; the handler runs only while the claim is held;
 * - `onSend`: stores the response before it is sent (or releases the key for a 5xx or 408).
 *
 * Register it after authentication and rate limiting, so that neither a 401 nor a 429 touches
 * the key.
 */
const plugin: FastifyPluginCallback<FastifyIdempotencyOptions> = (
  fastify: FastifyInstance,
  options,
  done,
) => {
  const { engine, scope, readRawBody } = options
  fastify.decorateRequest('idempotencyKey', null)
  fastify.decorateRequest('idempotencyClaim', null)

  // The hooks are attached to the POST and DELETE routes only (see onRoute below), so a GET
  // pays nothing; they are callback-style, so an unkeyed POST passes them without a promise.
  const onRequest: onRequestHookHandler = (request, reply, next) => {
    if (!KEYED_METHODS.has(request.method)) {
      next()
      return
    }
    try {
      request.idempotencyKey = parseIdempotencyKeyHeader(
        headerValues(request.raw.rawHeaders, 'idempotency-key'),
      )
    } catch (error) {
      sendError(reply, error)
      return
    }
    next()
  }

  const preParsing: preParsingHookHandler = (request, _reply, payload, next) => {
    if (request.idempotencyKey === null) {
      next(null, payload)
      return
    }
    const chunks: Buffer[] = []
    ;(request as AdapterState)[kBody] = chunks
    next(null, captureBody(payload, chunks))
  }

  function rawBodyOf(request: FastifyRequest): Uint8Array {
    if (readRawBody === undefined) return Buffer.concat((request as AdapterState)[kBody] ?? [])
    const body = readRawBody(request)
    if (body !== undefined) return body
    // A body the app's parser did not keep would drop out of the fingerprint, and another body
    // under the same key would get this one's replay: refuse rather than guess.
    if (hasBody(request)) {
      throw new TypeError(
        'readRawBody returned nothing for a request with a body: keep the raw body in every content-type parser',
      )
    }
    return EMPTY
  }

  async function claimOrAnswer(request: FastifyRequest, reply: FastifyReply, key: string) {
    let signal: AbortSignal | undefined
    const begun = await engine
      .begin({
        scope: scope(request),
        key,
        method: request.method,
        pathWithQuery: request.url,
        body: rawBodyOf(request),
        // Built only if the request has to wait: a listener per request costs every request.
        get signal() {
          return (signal ??= clientGone(reply))
        },
      })
      .then(
        (value) => ({ ok: true, value }) as const,
        (error: unknown) => ({ ok: false, error }) as const,
      )
    if (reply.sent) {
      // Answered meanwhile (the app's deadline): a claim won now must not run the operation.
      if (begun.ok && begun.value.kind === 'claimed') {
        await begun.value.claim.release().catch(() => undefined)
      }
      return
    }
    if (!begun.ok) {
      sendError(reply, begun.error)
      return
    }
    if (begun.value.kind === 'replay') {
      sendReplay(reply, begun.value.response)
      return
    }
    request.idempotencyClaim = begun.value.claim
  }

  const preHandler: preHandlerHookHandler = (request, reply, next) => {
    const key = request.idempotencyKey
    if (key === null) {
      next()
      return
    }
    claimOrAnswer(request, reply, key).then(
      () => {
        // Answered (a replay, a conflict): the handler must not run, so no next().
        if (request.idempotencyClaim !== null) next()
      },
      (error: unknown) => {
        next(error as Error)
      },
    )
  }

  async function finish(
    request: FastifyRequest,
    reply: FastifyReply,
    claim: ActiveClaim<StoreTransaction>,
    payload: unknown,
  ): Promise<unknown> {
    const body = toBytes(payload)
    try {
      if (body === undefined) {
        // A streamed body cannot be stored for replay: give the key back instead.
        await claim.release()
        return payload
      }
      await claim.finish(capture(reply, body, request.id))
      // The bytes stored are the bytes sent: no second encoding of the same string.
      return body
    } catch (error) {
      const mapped = isIdempotencyError(error) ? toIdempotencyErrorResponse(error) : undefined
      if (mapped === undefined) throw error
      reply.code(mapped.status).headers(mapped.headers).header('content-type', JSON_TYPE)
      reply.removeHeader('location')
      return renderErrorEnvelope(mapped.code, mapped.message)
    }
  }

  const onSend: onSendHookHandler = (request, reply, payload, next) => {
    const claim = request.idempotencyClaim
    // A lost claim goes on to finish(), which refuses it: its answer is not the key's answer.
    if (claim === null || (claim.settled && claim.state !== 'lost')) {
      next(null, payload)
      return
    }
    finish(request, reply, claim, payload).then(
      (sent) => {
        next(null, sent)
      },
      (error: unknown) => {
        next(error as Error)
      },
    )
  }

  // A response that never reached onSend (the socket died mid-way) must not leave the key held.
  const onResponse: onResponseHookHandler = (request, _reply, next) => {
    const claim = request.idempotencyClaim
    if (claim !== null && !claim.settled) void claim.release().catch(() => undefined)
    next()
  }

  // Route-level hooks run after the app's own hooks of the same kind, so authentication and
  // rate limiting (app-level onRequest hooks) still come first.
  fastify.addHook('onRoute', (route: RouteOptions) => {
    const methods = [route.method].flat()
    if (!methods.some((method) => KEYED_METHODS.has(method))) return
    if (route.config?.idempotency === false) return
    route.onRequest = [...asArray(route.onRequest), onRequest]
    if (readRawBody === undefined) route.preParsing = [...asArray(route.preParsing), preParsing]
    route.preHandler = [...asArray(route.preHandler), preHandler]
    route.onSend = [...asArray(route.onSend), onSend]
    route.onResponse = [...asArray(route.onResponse), onResponse]
    // Whatever happens in the hooks, a keyed request's handler runs only while its claim is
    // held: a replay, a conflict or a client that went away can never fall through to it.
    const handler = route.handler
    route.handler = function guardedHandler(this: FastifyInstance, request, reply) {
      if (request.idempotencyKey !== null && request.idempotencyClaim === null) return reply
      return handler.call(this, request, reply)
    }
  })
  done()
}

const EMPTY = new Uint8Array(0)

function asArray<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return []
  return Array.isArray(value) ? value : [value]
}

function hasBody(request: FastifyRequest): boolean {
  const headers = request.raw.headers
  const length = headers['content-length']
  return (length !== undefined && length !== '0') || headers['transfer-encoding'] !== undefined
}

const JSON_TYPE = 'application/json; charset=utf-8'

function sendError(reply: FastifyReply, error: unknown): FastifyReply {
  if (!isIdempotencyError(error)) return reply.send(error)
  const mapped = toIdempotencyErrorResponse(error)
  return reply
    .code(mapped.status)
    .headers(mapped.headers)
    .header('content-type', JSON_TYPE)
    .send(renderErrorEnvelope(mapped.code, mapped.message))
}

/**
 * A replay's headers and body, built once per stored response: stores hand out the same
 * object for every replay of a cached record.
 */
const prepared = new WeakMap<StoredResponse, { headers: Record<string, string>; body: Buffer }>()

function sendReplay(reply: FastifyReply, response: StoredResponse): FastifyReply {
  let replay = prepared.get(response)
  if (replay === undefined) {
    replay = {
      headers: {
        ...response.headers,
        'idempotent-replayed': 'true',
        'original-request': response.requestId,
      },
      body: Buffer.from(response.body.buffer, response.body.byteOffset, response.body.byteLength),
    }
    prepared.set(response, replay)
  }
  return reply.code(response.status).headers(replay.headers).send(replay.body)
}

function capture(reply: FastifyReply, body: Uint8Array, requestId: string): StoredResponse {
  const headers: Record<string, string> = {}
  for (const name of STORED_HEADER_NAMES) {
    const value = reply.getHeader(name)
    if (value !== undefined) headers[name] = String(value)
  }
  return { status: reply.statusCode, headers, body, requestId }
}

function toBytes(payload: unknown): Uint8Array | undefined {
  if (payload === null || payload === undefined) return new Uint8Array(0)
  if (typeof payload === 'string') return Buffer.from(payload)
  if (payload instanceof Uint8Array) return payload
  return undefined
}

/** Aborts when the client's connection closes before the response has been sent. */
function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  const res = reply.raw
  const onClose = () => {
    if (!res.writableFinished) controller.abort()
  }
  res.once('close', onClose)
  return controller.signal
}

/** Passes the body through unchanged while keeping its bytes for the fingerprint. */
function captureBody(
  source: NodeJS.ReadableStream,
  chunks: Buffer[],
): Transform & { receivedEncodedLength: number } {
  const tee = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      chunks.push(chunk)
      received.receivedEncodedLength += chunk.length
      callback(null, chunk)
    },
  })
  // Fastify compares this with Content-Length to detect truncated bodies.
  const received = tee as Transform & { receivedEncodedLength: number }
  received.receivedEncodedLength = 0
  source.on('error', (error: Error) => tee.destroy(error))
  source.pipe(tee)
  return received
}

/** The Fastify plugin; see {@link FastifyIdempotencyOptions}. */
export const fastifyIdempotency = fp(plugin, { fastify: '5.x', name: '@ticksupply/idempotency' })
export default fastifyIdempotency
