import type {
  FastifyInstance,
  FastifyPluginCallback,
  FastifyReply,
  FastifyRequest,
  onRequestHookHandler,
  onResponseHookHandler,
  onErrorHookHandler,
  onSendHookHandler,
  preHandlerHookHandler,
  preParsingHookHandler,
  RouteOptions,
} from 'fastify'
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib'
import type { ServerResponse } from 'node:http'
import Fastify from 'fastify'
import fp from 'fastify-plugin'
import type { ActiveClaim } from '../core/engine.js'
import { isIdempotencyHttpError } from '../core/error-response.js'
import { BodyFingerprint } from '../core/fingerprint.js'
import { headerValues } from '../core/key.js'
import type { FastifyIdempotencyTransaction, RequestState } from './fastify-reply.js'
import { attachState, stateOf } from './fastify-reply.js'
import { holdResponse } from './held-response.js'
import type {
  IdempotencyAdapterOptions,
  IdempotencyRouteSettings,
  PreparedReplay,
} from './idempotency-adapter.js'
import {
  KEYED_METHODS,
  OPERATION_ANSWER_HEADERS,
  announcesBody,
  clientGone,
  createIdempotencyAdapter,
  resolveRouteSettings,
} from './idempotency-adapter.js'

export interface FastifyIdempotencyOptions extends IdempotencyAdapterOptions<
  FastifyIdempotencyTransaction,
  FastifyRequest
> {
  /**
   * The request's raw body bytes, where the app's content-type parsers keep them (read as a
   * buffer, then parsed). Without it the adapter hashes the body of keyed requests as the
   * app's parser reads it (a listener on the stream, no copy kept of bodies above 64 KiB). Must
   * answer for every request that has a body; `undefined` means "no body".
   * @default undefined (hash the body as it is read)
   */
  readonly readRawBody?: (request: FastifyRequest) => Uint8Array | undefined
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * `false` makes a POST or DELETE route ignore `Idempotency-Key`; `{ required: true }`
     * refuses a request without one (400).
     * @default true
     */
    idempotency?: boolean | IdempotencyRouteSettings
  }
  interface FastifyRequest {
    /** The canonical key of a keyed POST or DELETE; `null` when the request is not keyed. */
    idempotencyKey: string | null
    /** The claim the request holds while its handler runs; `null` when it holds none. */
    idempotencyClaim: ActiveClaim<FastifyIdempotencyTransaction> | null
  }
}

/**
 * Makes every POST and DELETE route registered after it honour `Idempotency-Key`:
 *
 * - `onRequest`: parses the key (a bad one is a 400 before the body is read);
 * - `preParsing`: feeds the raw body bytes to the fingerprint as they stream by;
 * - `preHandler`: claims, replays or waits; the handler runs only while the claim is held;
 * - `onSend`: stores the response before it is sent (or gives the key back).
 *
 * Errors (400, 409, 503) go to the app's error handler as an `IdempotencyHttpError`; where the
 * app set none, the adapter answers them itself with `renderError`'s rendering (the envelope).
 * Register it after authentication and rate limiting, so that neither a 401 nor a 429 touches
 * the key.
 */
const plugin: FastifyPluginCallback<FastifyIdempotencyOptions> = (
  fastify: FastifyInstance,
  options,
  done,
) => {
  let adapter
  try {
    adapter = createIdempotencyAdapter(options)
    if (options.readRawBody !== undefined && typeof options.readRawBody !== 'function') {
      throw new TypeError('Expected `readRawBody` to be a function.')
    }
  } catch (error) {
    // Fails the app's start (register/ready rejects), naming the bad option.
    done(error as Error)
    return
  }
  const { readRawBody } = options
  fastify.decorateRequest('idempotencyKey', null)
  fastify.decorateRequest('idempotencyClaim', null)

  // The hooks are attached to the POST and DELETE routes only (see onRoute below), so a GET
  // pays nothing; they are callback-style, so an unkeyed POST passes them without a promise.
  const onRequestFor =
    (settings: IdempotencyRouteSettings): onRequestHookHandler =>
    (request, reply, next) => {
      try {
        const exchange = adapter.open(
          request,
          request.method,
          targetAsSent(request),
          headerValues(request.raw.rawHeaders, 'idempotency-key'),
          settings,
        )
        if (exchange !== null) {
          attachState(request, {
            exchange,
            requestId: () => adapter.requestId?.(request) ?? request.id,
          })
          request.idempotencyKey = exchange.key
        }
      } catch (error) {
        handOn(reply, error, next)
        return
      }
      next()
    }

  const preParsing: preParsingHookHandler = (request, _reply, payload, next) => {
    const state = stateOf(request)
    if (state !== undefined) {
      state.body = new BodyFingerprint(request.method, targetAsSent(request))
      state.bodyStream = payload
      observeBody(payload, state.body)
    }
    next(null, payload)
  }

  function rawBodyOf(request: FastifyRequest, state: RequestState): Uint8Array | BodyFingerprint {
    if (readRawBody === undefined) {
      if (state.body === undefined) return EMPTY
      // A body the handler reads itself (a parser that hands on the stream) is not whole yet:
      // a fingerprint of part of it would give another body under the same key this replay.
      if (!ended(state.bodyStream) && announcesBody(request.raw.headers)) {
        throw new TypeError(
          'the body of a keyed request is read after its claim: parse it before the handler, or give readRawBody',
        )
      }
      return state.body
    }
    const body = readRawBody(request)
    if (body !== undefined) return body
    // A body the app's parser did not keep would drop out of the fingerprint, and another body
    // under the same key would get this one's replay: refuse rather than guess.
    if (announcesBody(request.raw.headers)) {
      throw new TypeError(
        'readRawBody returned nothing for a request with a body: keep the raw body in every content-type parser',
      )
    }
    return EMPTY
  }

  const preHandler: preHandlerHookHandler = (request, reply, next) => {
    const state = stateOf(request)
    if (state === undefined) {
      next()
      return
    }
    let signal: AbortSignal | undefined
    let begun
    try {
      begun = state.exchange.begin(adapter.scope(request), rawBodyOf(request, state), () => {
        // Built only if the request has to wait: a listener per request costs every request.
        return (signal ??= clientGone(reply.raw))
      })
    } catch (error) {
      handOn(reply, error, next)
      return
    }
    begun.then(
      (outcome) => {
        if (reply.sent) {
          // Answered meanwhile (the app's deadline): a claim won now must not run the operation.
          void state.exchange.giveUp('unfinished')
        } else if (outcome.kind === 'replay') {
          // Answered: the handler must not run, so no next().
          sendReplay(reply, outcome.replay)
        } else {
          request.idempotencyClaim = outcome.claim
          giveUpIfDestroyed(reply.raw, state)
          next()
        }
      },
      (error: unknown) => {
        if (!reply.sent) handOn(reply, error, next)
      },
    )
  }

  const onSend: onSendHookHandler = (request, reply, payload, next) => {
    const state = stateOf(request)
    if (state === undefined || !state.exchange.pending) {
      if (state?.untypedReplay === true) reply.removeHeader('content-type')
      state?.exchange.sent(reply.statusCode)
      next(null, payload)
      return
    }
    const handed = state.handed
    // The key keeps the answer as it reaches this hook, the last: after Fastify's
    // serialisation and the app's preSerialization and onSend hooks, the bytes sent. A replay
    // goes out as bytes, which hooks that work on the serialised string (Fastify's own idiom)
    // leave alone. Stored before those hooks, a replay missed what they did (a redaction, a
    // preSerialization envelope), and a handler's object was serialised a second time, after
    // the handler had changed it.
    //
    // An app hook encoded the answer on its way out (compression: the hook sets
    // Content-Encoding, and may hand on a stream): then the key keeps what the handler
    // answered, as its replay's body, and the same hooks encode the replay in turn, for that
    // request's Accept-Encoding. Stored as sent, the replay would be encoded twice.
    const encodedByHooks =
      handed !== undefined && !handed.encoded && reply.hasHeader('content-encoding')
    if (!encodedByHooks) {
      keep(state, reply, payload, toBytes(payload), false, next)
      return
    }
    if (!handed.error) {
      const body = toBytes(handedBytes(reply, handed.payload, payload))
      keep(state, reply, payload, body, true, next)
      return
    }
    // Fastify rendered a thrown Error and handed the rendering to the hooks without another
    // send: only its encoded bytes reach the adapter, which keeps them decoded.
    state.finishing = true
    void wholeBytes(payload).then(
      (encoded) => {
        const coding = String(reply.getHeader('content-encoding'))
        const limit = state.exchange.maxStoredBodyBytes
        keep(state, reply, encoded, decodeContent(coding, encoded, limit), true, next)
      },
      (error: unknown) => {
        state.finishing = false
        void state.exchange.giveUp('streamed', reply.statusCode)
        next(error as Error)
      },
    )
  }

  /**
   * Stores `body` as the key's response (or gives the key back when there is none to store),
   * then sends `sending` on: the bytes stored, unless the hooks encoded them.
   */
  function keep(
    state: RequestState,
    reply: FastifyReply,
    sending: unknown,
    body: Uint8Array | undefined,
    encodedByHooks: boolean,
    next: (error?: Error | null, payload?: unknown) => void,
  ): void {
    // Until the answer goes on, a second send of the handler is its mistake, not an answer.
    state.finishing = true
    if (body === undefined) {
      // A streamed body cannot be stored for replay: give the key back instead.
      void state.exchange.giveUp('streamed', reply.statusCode).then(() => {
        state.finishing = false
        next(null, sending)
      })
      return
    }
    const response = state.exchange.capture(
      reply.statusCode,
      // The hooks' encoding is theirs, and the body kept is not encoded.
      encodedByHooks
        ? (name) => (name === 'content-encoding' ? undefined : reply.getHeader(name))
        : (name) => reply.getHeader(name),
      body,
      state.requestId(),
    )
    state.exchange.finish(response).then(
      // The bytes stored are the bytes sent (no second encoding of the same string), unless
      // the hooks encoded them.
      () => {
        state.finishing = false
        next(null, encodedByHooks ? sending : sendable(body))
      },
      (error: unknown) => {
        state.finishing = false
        // The operation's answer is not the key's answer: none of its headers about its body
        // or its resource may go out with the error.
        for (const name of OPERATION_ANSWER_HEADERS) reply.removeHeader(name)
        // An answer that is itself the app's rendering of an error (a deadline's 408, a 503)
        // is answered here too: Fastify does not run the app's error handler twice.
        if (isIdempotencyHttpError(error) && (!appHandlesErrors(reply) || state.answersAnError)) {
          const { response } = error
          reply.code(response.status).headers(response.headers)
          next(null, response.body)
          return
        }
        next(error as Error)
      },
    )
  }

  // Runs before the app's error handler renders an error: the answer that follows is its.
  const onError: onErrorHookHandler = (request, _reply, _error, next) => {
    const state = stateOf(request)
    if (state !== undefined) state.answersAnError = true
    next()
  }

  // A response that never reached onSend (the socket died mid-way) must not leave the key held.
  const onResponse: onResponseHookHandler = (request, _reply, next) => {
    const state = stateOf(request)
    // Most answers settled their exchange already: no promise for nothing to do.
    if (state !== undefined && !state.exchange.done) void state.exchange.giveUp('unfinished')
    next()
  }

  // Route-level hooks run after the app's own hooks of the same kind, so authentication and
  // rate limiting (app-level onRequest hooks) still come first.
  fastify.addHook('onRoute', (route: RouteOptions) => {
    const methods = [route.method].flat()
    if (!methods.some((method) => KEYED_METHODS.has(method))) return
    const settings = resolveRouteSettings(
      route.config?.idempotency,
      `${methods.join(',')} ${route.url}`,
    )
    if (settings.enabled === false) return
    route.onRequest = [...asArray(route.onRequest), onRequestFor(settings)]
    if (readRawBody === undefined) route.preParsing = [...asArray(route.preParsing), preParsing]
    route.preHandler = [...asArray(route.preHandler), preHandler]
    route.onSend = [...asArray(route.onSend), onSend]
    route.onError = [...asArray(route.onError), onError]
    route.onResponse = [...asArray(route.onResponse), onResponse]
    // Whatever happens in the hooks, a keyed request's handler runs only while its claim is
    // held: a replay, a conflict or a client that went away can never fall through to it.
    const handler = route.handler
    route.handler = function guardedHandler(this: FastifyInstance, request, reply) {
      if (request.idempotencyKey !== null) {
        if (request.idempotencyClaim === null) return reply
        // What the handler answers is noted before the app's onSend hooks see it.
        const state = stateOf(request)
        if (state !== undefined) {
          // eslint-disable-next-line @typescript-eslint/unbound-method -- called on the reply again
          state.send = reply.send
          reply.send = sendNotingPayload
          reply.hijack = hijackHoldingAnswer
          return runHandler(handler, this, request, reply, state)
        }
      }
      return handler.call(this, request, reply)
    }
  })
  done()
}

/**
 * Fastify's own error handler, which renders errors in Fastify's format: an app that set none
 * gets the adapter's rendering (the envelope by default) instead.
 */
let fastifyDefaultErrorHandler: FastifyInstance['errorHandler'] | undefined

/**
 * A handler that destroys the response before any answer reaches `onSend` (`reply.raw.destroy()`)
 * will not answer: the key is given back, as Express's adapter does. A client that disconnects
 * does not come this way (Node closes the response without `destroy()`), so its operation goes
 * on and stores its answer for the retry; an answer on its way through `onSend` is settled there.
 */
function giveUpIfDestroyed(raw: ServerResponse, state: RequestState): void {
  const destroy = raw.destroy.bind(raw)
  raw.destroy = function heldDestroy(this: ServerResponse, error?: Error) {
    raw.destroy = destroy
    if (state.exchange.pending && !state.finishing) {
      void state.exchange.giveUp('unfinished', raw.statusCode)
    }
    return destroy(error)
  }
}

/**
 * The request target exactly as sent, for the fingerprint: before an app's `rewriteUrl`
 * (Fastify keeps the original on the raw request then), as sent otherwise.
 */
function targetAsSent(request: FastifyRequest): string {
  return (request.raw as { originalUrl?: string }).originalUrl ?? request.url
}

/** Whether the route's error handler is the app's own. */
function appHandlesErrors(reply: FastifyReply): boolean {
  // One throwaway instance, never listening, the first time an error needs the answer.
  fastifyDefaultErrorHandler ??= Fastify().errorHandler
  return reply.server.errorHandler !== fastifyDefaultErrorHandler
}

/**
 * Hands an error on to the app's error handler, as any plugin's; an idempotency error on a
 * route whose app set no error handler is answered with the adapter's rendering instead.
 */
function handOn(reply: FastifyReply, error: unknown, next: (error?: Error) => void): void {
  if (isIdempotencyHttpError(error) && !appHandlesErrors(reply)) {
    const { response } = error
    void reply.code(response.status).headers(response.headers).send(response.body)
    return
  }
  next(error as Error)
}

const EMPTY = new Uint8Array(0)

function asArray<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return []
  return Array.isArray(value) ? value : [value]
}

function sendReplay(reply: FastifyReply, replay: PreparedReplay): FastifyReply {
  const { body } = replay
  reply.code(replay.status).headers(replay.headers)
  // An original with no payload had no Content-Type either; a Buffer, even an empty one, would
  // get Fastify's application/octet-stream.
  if (!reply.hasHeader('content-type')) {
    if (body.byteLength === 0) return reply.send()
    // A body sent without one (a reply.serializer() answer): the adapter's onSend takes the
    // type Fastify gives a Buffer off again.
    const state = stateOf(reply.request)
    if (state !== undefined) state.untypedReplay = true
  }
  return reply.send(Buffer.from(body.buffer, body.byteOffset, body.byteLength))
}

/**
 * Runs a keyed handler. A hijacked reply's errors are Fastify's to log, not to answer: a
 * handler that throws after `reply.hijack()` would leave its key claimed, so its key is given
 * back then (the rejection is watched only once the reply is hijacked).
 */
function runHandler(
  handler: RouteOptions['handler'],
  instance: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  state: RequestState,
): unknown {
  let result: unknown
  try {
    result = handler.call(instance, request, reply)
  } catch (error) {
    if (state.hijacked === true) giveUpAfterThrow(state)
    throw error
  }
  if (isThenable(result)) {
    if (state.hijacked === true) watchForThrow(result, state)
    else state.running = result
  }
  return result
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

function watchForThrow(running: PromiseLike<unknown>, state: RequestState): void {
  running.then(undefined, () => {
    giveUpAfterThrow(state)
  })
}

function giveUpAfterThrow(state: RequestState): void {
  if (state.exchange.pending && state.finishing !== true) void state.exchange.giveUp('threw')
}

/**
 * `reply.hijack()` of a request whose handler runs under a claim: the answer it then writes to
 * `reply.raw` passes no onSend hook, so the raw response is held back until that answer is
 * stored, as the Express adapter holds every response. Without it, the key was given back
 * once the raw answer had gone out, and every retry ran the operation again.
 */
function hijackHoldingAnswer(this: FastifyReply): FastifyReply {
  const state = stateOf(this.request)
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called on the reply again
  const hijack = (Object.getPrototypeOf(this) as FastifyReply).hijack
  if (state !== undefined && state.exchange.pending && !this.sent) {
    holdResponse(this.raw, state)
    state.hijacked = true
    // Hijacked once the handler had returned its promise (after an await): watch it from now.
    if (state.running !== undefined) watchForThrow(state.running, state)
  }
  return hijack.call(this)
}

/**
 * `reply.send` of a request whose handler runs under a claim: notes the payload, and whether
 * the reply was already encoded (a handler that sends compressed bytes itself), then sends as
 * Fastify does. One function for every request: no closure per request.
 */
function sendNotingPayload(this: FastifyReply, payload?: unknown): FastifyReply {
  const state = stateOf(this.request)
  if (state?.send === undefined) throw new Error('the idempotency adapter lost its reply')
  if (state.finishing === true) {
    // Sent twice while the first answer is being stored: Fastify itself keeps the first answer
    // of a reply and warns of any later one; so does the adapter.
    this.log.warn(
      'Reply was already sent: this send is ignored (the idempotency key keeps the first)',
    )
    return this
  }
  // An Error is not an answer yet: Fastify's error handling renders it and hands the rendering
  // to the onSend hooks without another send.
  state.handed = {
    payload,
    encoded: this.hasHeader('content-encoding'),
    error: payload instanceof Error,
  }
  return state.send.call(this, payload)
}

/**
 * The bytes of what the handler handed `reply.send`, as Fastify serialises them. `sent` is
 * what reached the onSend hooks: Fastify serialises a `null` only for JSON (it reaches them as
 * `"null"` then, and as `null` for another content type).
 */
function handedBytes(reply: FastifyReply, payload: unknown, sent: unknown): unknown {
  if (payload === null) return sent === null ? null : reply.serialize(null)
  if (payload === undefined || typeof payload === 'string') return payload
  if (payload instanceof Uint8Array || typeof (payload as { pipe?: unknown }).pipe === 'function')
    return payload
  return reply.serialize(payload)
}

/** The whole of a payload, read to its end when it is a stream. */
async function wholeBytes(payload: unknown): Promise<Buffer> {
  const bytes = toBytes(payload)
  if (bytes !== undefined) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const chunks: Buffer[] = []
  for await (const chunk of payload as AsyncIterable<Buffer | string>) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
  }
  return Buffer.concat(chunks)
}

/**
 * `bytes` without the content codings `header` lists (the last applied first), or undefined for
 * a coding this cannot undo, bytes that do not decode, or more than `limit` bytes decoded.
 */
function decodeContent(header: string, bytes: Buffer, limit: number): Buffer | undefined {
  const options = { maxOutputLength: Math.max(1, limit) }
  let decoded = bytes
  try {
    for (const coding of header
      .split(',')
      .map((value) => value.trim().toLowerCase())
      .reverse()) {
      if (coding === 'gzip' || coding === 'x-gzip') decoded = gunzipSync(decoded, options)
      else if (coding === 'deflate') decoded = inflateSync(decoded, options)
      else if (coding === 'br') decoded = brotliDecompressSync(decoded, options)
      else if (coding !== 'identity' && coding !== '') return undefined
    }
  } catch {
    return undefined
  }
  return decoded
}

/**
 * The stored bytes as Fastify's `onSend` takes a payload on: a Buffer (a view, no copy).
 * Fastify refuses any other Uint8Array there, the empty one that stands for no payload too.
 */
function sendable(body: Uint8Array): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
}

function toBytes(payload: unknown): Uint8Array | undefined {
  if (payload === null || payload === undefined) return EMPTY
  if (typeof payload === 'string') return Buffer.from(payload)
  if (payload instanceof Uint8Array) return payload
  return undefined
}

/**
 * Feeds the body's bytes to its fingerprint as its reader takes them, without a stream in
 * between: every chunk read passes this listener too, whichever way it is read (data events, a
 * pipe, `read()`, async iteration). Added, a `'data'` listener would start the stream flowing
 * before its reader (the content-type parser, or a later preParsing stream) is there; so the
 * stream is paused while it is added, then set back to having no reader (`readableFlowing`
 * null, not the `false` of a pause): left paused, a parser's own `'data'` listener (Fastify's
 * documented idiom) did not start it, and the request hung. Chunks are never held past the
 * fingerprint's own bound.
 */
function observeBody(payload: NodeJS.ReadableStream, fingerprint: BodyFingerprint): void {
  payload.pause()
  payload.on('data', (chunk: Buffer | string) => {
    fingerprint.add(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
  })
  ;(payload as unknown as { readableFlowing: boolean | null }).readableFlowing = null
}

function ended(stream: NodeJS.ReadableStream | undefined): boolean {
  return (stream as { readonly readableEnded?: boolean } | undefined)?.readableEnded === true
}

/** The Fastify plugin; see {@link FastifyIdempotencyOptions}. */
export const fastifyIdempotency = fp(plugin, { fastify: '5.x', name: '@ticksupply/idempotency' })
export default fastifyIdempotency

export type { FastifyIdempotencyTransaction, FastifyIdempotencyTypes } from './fastify-reply.js'
export { completeReply } from './fastify-reply.js'
export type {
  IdempotencyOutcome,
  IdempotencyRouteSettings,
  NotStoredReason,
} from './idempotency-adapter.js'
