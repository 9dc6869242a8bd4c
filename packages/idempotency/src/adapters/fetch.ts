import { randomUUID } from 'node:crypto'
import type { ActiveClaim } from '../core/engine.js'
import { isIdempotencyHttpError } from '../core/error-response.js'
import type { StoreTransaction } from '../core/store.js'
import type {
  IdempotencyAdapterOptions,
  IdempotencyRouteSettings,
  KeyedExchange,
  PreparedReplay,
} from './idempotency-adapter.js'
import { createIdempotencyAdapter, resolveRouteSettings } from './idempotency-adapter.js'

/**
 * A fetch-style handler: a `Request` in, a `Response` out, with whatever else the runtime
 * passes along (Hono's context, Bun's server, a Worker's `env` and `ctx`), forwarded as is.
 */
export type FetchHandler<A extends unknown[] = []> = (
  request: Request,
  ...args: A
) => Response | Promise<Response>

/** What {@link FetchIdempotency.wrap} returns: the handler, answering asynchronously. */
export type IdempotentFetchHandler<A extends unknown[] = []> = (
  request: Request,
  ...args: A
) => Promise<Response>

/** The adapter's options; the request functions also receive the handler's extra arguments. */
export interface FetchIdempotencyOptions<
  Tx extends StoreTransaction,
  A extends unknown[] = [],
> extends Omit<IdempotencyAdapterOptions<Tx, Request>, 'scope' | 'skip' | 'requestId'> {
  /** Whose keys these are (the account): runs after authentication. */
  readonly scope: (request: Request, ...args: A) => string
  /**
   * Requests for which the header is ignored.
   * @default none
   */
  readonly skip?: (request: Request, ...args: A) => boolean
  /**
   * The id a replay names in `Original-Request`.
   * @default the response's `X-Request-Id`, else the request's, else a new UUID
   */
  readonly requestId?: (request: Request, ...args: A) => string
  /**
   * A POST or DELETE without the header is refused with 400.
   * @default false
   */
  readonly required?: boolean
}

/** One configured adapter: wraps handlers, and completes claims inside transactions. */
export interface FetchIdempotency<Tx extends StoreTransaction, A extends unknown[] = []> {
  /** `handler`, honouring `Idempotency-Key` on POST and DELETE. */
  wrap(handler: FetchHandler<A>, route?: IdempotencyRouteSettings): IdempotentFetchHandler<A>
  /**
   * Checks only the key's format (and whether one is required): the error response for a bad
   * one, `undefined` otherwise. Call it before your validation, so that a bad key is answered
   * before a bad body, as the contract's order of checks says.
   */
  readonly checkKey: (request: Request, ...args: A) => Response | undefined
  /** {@link FetchIdempotency.checkKey} with route settings (`{ required: true }`). */
  readonly checkKeyOf: (
    route: IdempotencyRouteSettings,
  ) => (request: Request, ...args: A) => Response | undefined
  /** The claim a request holds while its handler runs; `null` when it holds none. */
  claimOf(request: Request): ActiveClaim<Tx> | null
  /**
   * Stores `response` as the key's answer inside the caller's transaction (the operation's
   * writes and the stored response commit together) and resolves a response with the same
   * status, headers and bytes, to return from the handler.
   *
   * @throws {LeaseLostError} the key is no longer this request's: roll the transaction back.
   * @throws {StoreUnavailableError}
   */
  complete(request: Request, response: Response, tx: Tx): Promise<Response>
}

interface FetchCall<A extends unknown[]> {
  readonly request: Request
  readonly args: A
}

interface ExchangeState {
  readonly exchange: KeyedExchange<StoreTransaction>
  readonly requestId: (response: Response) => string
}

/** Shared by every instance, so that any instance's `complete` finds a request's claim. */
const states = new WeakMap<Request, ExchangeState>()

/**
 * Validates the options at once (a `TypeError` naming the bad one) and returns the adapter.
 * For one handler without a transaction, {@link withIdempotency} is shorter.
 */
export function createFetchIdempotency<Tx extends StoreTransaction, A extends unknown[] = []>(
  options: FetchIdempotencyOptions<Tx, A>,
): FetchIdempotency<Tx, A> {
  const { scope, skip, requestId, ...rest } = options
  const adapter = createIdempotencyAdapter<Tx, FetchCall<A>>({
    ...rest,
    scope: lift(scope),
    ...(skip === undefined ? {} : { skip: lift(skip) }),
    ...(requestId === undefined ? {} : { requestId: lift(requestId) }),
  })

  const checkKeyOf =
    (route: IdempotencyRouteSettings | undefined) =>
    (request: Request, ...args: A): Response | undefined => {
      try {
        adapter.open(
          { request, args },
          request.method,
          pathWithQueryOf(request.url),
          keyHeaderValues(request.headers),
          route,
        )
        return undefined
      } catch (error) {
        if (isIdempotencyHttpError(error)) return errorResponse(error.response)
        throw error
      }
    }

  function wrap(
    handler: FetchHandler<A>,
    route?: IdempotencyRouteSettings,
  ): IdempotentFetchHandler<A> {
    if (typeof handler !== 'function') throw new TypeError('Expected a handler function.')
    const settings = resolveRouteSettings(route, 'a wrapped handler')
    return async (request, ...args) => {
      const call: FetchCall<A> = { request, args }
      let exchange
      let begun
      try {
        exchange = adapter.open(
          call,
          request.method,
          pathWithQueryOf(request.url),
          keyHeaderValues(request.headers),
          settings,
        )
        if (exchange === null) return await handler(request, ...args)
        begun = await exchange.begin(adapter.scope(call), await rawBodyOf(request), () => {
          return request.signal
        })
      } catch (error) {
        if (isIdempotencyHttpError(error)) return errorResponse(error.response)
        throw error
      }
      if (begun.kind === 'replay') return replayResponse(begun.replay)
      const keyed = exchange
      states.set(request, {
        exchange: keyed,
        requestId: (response) =>
          adapter.requestId?.(call) ??
          response.headers.get('x-request-id') ??
          request.headers.get('x-request-id') ??
          randomUUID(),
      })
      let response: Response
      try {
        response = await handler(request, ...args)
      } catch (error) {
        // No response to store: give the key back before the error goes on, so that the retry
        // finds it free.
        await keyed.giveUp('threw')
        throw error
      }
      try {
        return await respond(request, keyed, response)
      } catch (error) {
        // The response could not be read (its body stream failed, or it is no Response): no
        // answer to store, so the key goes back as for a throw. A settled exchange ignores this.
        await keyed.giveUp('threw')
        throw error
      }
    }
  }

  return {
    wrap,
    checkKey: checkKeyOf(undefined),
    checkKeyOf: (route) => checkKeyOf(resolveRouteSettings(route, 'a key check')),
    claimOf: (request) =>
      (states.get(request)?.exchange.claim as ActiveClaim<Tx> | null | undefined) ?? null,
    async complete(request, response, tx) {
      const bytes = new Uint8Array(await response.arrayBuffer())
      const state = states.get(request)
      if (state?.exchange.claim != null) {
        const stored = state.exchange.capture(
          response.status,
          (name) => response.headers.get(name),
          bytes,
          state.requestId(response),
        )
        await state.exchange.completeWithin(stored, tx)
      }
      return rebuild(response, bytes)
    },
  }
}

/**
 * A function of the request and the handler's arguments as one of the call; anything else is
 * passed on for the validation to name.
 */
function lift<A extends unknown[], R>(
  fn: (request: Request, ...args: A) => R,
): (call: FetchCall<A>) => R {
  if (typeof fn !== 'function') return fn
  return (call) => fn(call.request, ...call.args)
}

/** `handler`, honouring `Idempotency-Key` on POST and DELETE. */
export function withIdempotency<Tx extends StoreTransaction, A extends unknown[] = []>(
  handler: FetchHandler<A>,
  options: FetchIdempotencyOptions<Tx, A>,
): IdempotentFetchHandler<A> {
  return createFetchIdempotency(options).wrap(handler)
}

/** Stores (or gives back the key for) the handler's response, then hands it on. */
async function respond(
  request: Request,
  exchange: KeyedExchange<StoreTransaction>,
  response: Response,
): Promise<Response> {
  if (!exchange.pending) {
    // Completed inside the handler's transaction (by complete(), which rebuilt the response).
    exchange.sent(response.status)
    return response
  }
  if (response.type === 'error') {
    // Response.error(), a network error: no answer to store or to rebuild. The key goes back
    // as for a throw, and the error goes on as the handler gave it.
    await exchange.giveUp('threw')
    return response
  }
  const state = states.get(request)
  const read = await readBounded(response.body, exchange.maxStoredBodyBytes)
  const stored = exchange.capture(
    response.status,
    (name) => response.headers.get(name),
    read.bytes,
    state?.requestId(response) ?? randomUUID(),
  )
  try {
    await exchange.finish(stored)
  } catch (error) {
    await read.rest?.cancel().catch(() => undefined)
    if (isIdempotencyHttpError(error)) return errorResponse(error.response)
    throw error
  }
  if (read.rest === undefined) return rebuild(response, read.bytes)
  // Larger than may be stored (the key was given back): what was read, then the rest.
  return new Response(prepend(read.bytes, read.rest), init(response))
}

const EMPTY = new Uint8Array(0)

/**
 * Reads a body up to one byte past `limit`: all of it when it fits, else the bytes read and
 * the stream of the rest.
 */
async function readBounded(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
): Promise<{ bytes: Uint8Array; rest?: ReadableStream<Uint8Array> }> {
  if (body === null) return { bytes: EMPTY }
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return { bytes: concat(chunks, size) }
    chunks.push(value)
    size += value.byteLength
    if (size > limit) {
      return {
        bytes: concat(chunks, size),
        rest: new ReadableStream<Uint8Array>({
          async pull(controller) {
            const next = await reader.read()
            if (next.done) controller.close()
            else controller.enqueue(next.value)
          },
          cancel: (reason) => reader.cancel(reason),
        }),
      }
    }
  }
}

function concat(chunks: readonly Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1 && chunks[0] !== undefined) return chunks[0]
  const bytes = new Uint8Array(size)
  let offset = 0
  for (const chunk of chunks) {
    bytes.set(chunk, offset)
    offset += chunk.byteLength
  }
  return bytes
}

function prepend(first: Uint8Array, rest: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = rest.getReader()
  let sentFirst = false
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!sentFirst) {
        sentFirst = true
        controller.enqueue(first)
        return
      }
      const next = await reader.read()
      if (next.done) controller.close()
      else controller.enqueue(next.value)
    },
    cancel: (reason) => reader.cancel(reason),
  })
}

async function rawBodyOf(request: Request): Promise<Uint8Array> {
  if (request.body === null) return EMPTY
  // A clone, so that the handler reads the body as if nothing had.
  return new Uint8Array(await request.clone().arrayBuffer())
}

/**
 * `Headers` joins repeated lines with ", ": two keys then read as one value, which no key
 * form can parse, so a repeated header is still refused.
 */
function keyHeaderValues(headers: Headers): string[] {
  const value = headers.get('idempotency-key')
  return value === null ? [] : [value]
}

/** The target as the `Request` holds it: everything from the first `/` after the authority. */
function pathWithQueryOf(url: string): string {
  const authority = url.indexOf('//')
  const path = url.indexOf('/', authority === -1 ? 0 : authority + 2)
  if (path === -1) return '/'
  const hash = url.indexOf('#', path)
  return hash === -1 ? url.slice(path) : url.slice(path, hash)
}

/** Statuses whose responses carry no body. */
function hasNoBody(status: number): boolean {
  return status === 101 || status === 204 || status === 205 || status === 304
}

function init(response: Response): ResponseInit {
  return { status: response.status, statusText: response.statusText, headers: response.headers }
}

/**
 * The handler's response with its body read into `bytes`. Its framing headers went with the
 * stream it had: the server frames the bytes itself (@hono/node-server added a Content-Length
 * to a kept `Transfer-Encoding: chunked`, an answer Node's own fetch refuses).
 */
function rebuild(response: Response, bytes: Uint8Array): Response {
  // No body stays no body: a server gives an empty one its default Content-Type.
  const body = hasNoBody(response.status) || response.body === null ? null : bytes
  const { headers } = response
  if (!headers.has('transfer-encoding') && !headers.has('content-length')) {
    return new Response(body, init(response))
  }
  const unframed = new Headers(headers)
  unframed.delete('transfer-encoding')
  unframed.delete('content-length')
  return new Response(body, { ...init(response), headers: unframed })
}

function replayResponse(replay: PreparedReplay): Response {
  // Headers, not a plain object, as a handler's own Response carries them: a server that
  // treats the two apart (@hono/node-server adds its default Content-Type only to the first)
  // then sends the replay as it sent the original.
  // An empty body without a type was most likely none at all (a redirect, a bare 201): sent as
  // none, so that the server adds no Content-Type the original did not have.
  const none =
    hasNoBody(replay.status) ||
    (replay.body.byteLength === 0 && !('content-type' in replay.headers))
  return new Response(none ? null : replay.body, {
    status: replay.status,
    headers: new Headers(replay.headers),
  })
}

function errorResponse(rendered: {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}): Response {
  return new Response(rendered.body, { status: rendered.status, headers: rendered.headers })
}

export type {
  IdempotencyOutcome,
  IdempotencyRouteSettings,
  NotStoredReason,
} from './idempotency-adapter.js'
