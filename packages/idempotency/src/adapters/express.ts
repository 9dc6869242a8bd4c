import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ActiveClaim } from '../core/engine.js'
import { headerValues } from '../core/key.js'
import type { StoreTransaction } from '../core/store.js'
import type {
  HeaderValue,
  IdempotencyAdapterOptions,
  IdempotencyRouteSettings,
  PreparedReplay,
} from './idempotency-adapter.js'
import type { HeldExchange } from './held-response.js'
import { holdResponse } from './held-response.js'
import {
  announcesBody,
  clientGone,
  createIdempotencyAdapter,
  resolveRouteSettings,
} from './idempotency-adapter.js'

/**
 * Express middleware (Express 5; it uses only Node's request and response, so Express 4 and
 * connect-style routers take it too).
 *
 * The claim is made where the middleware runs: mount it after authentication, rate limiting,
 * body parsing (with {@link keepRawBody}) and request validation, e.g. on the route:
 * `app.post('/orders', validateOrder, idempotency, createOrder)`. The response is held back
 * until it is stored (or its key given back), then sent as stored: the bytes stored are the
 * bytes sent, whichever of `res.send`, `res.json`, `res.write`/`res.end` or a piped stream the
 * handler (or Express's own error handler) used.
 */
export interface ExpressIdempotencyOptions<
  Tx extends StoreTransaction,
  Req extends IncomingMessage = IncomingMessage,
> extends IdempotencyAdapterOptions<Tx, Req> {
  /**
   * The request's raw body bytes.
   * @default the bytes {@link keepRawBody} kept, else `req.rawBody`, else `req.body` when it
   *   is a Buffer (`express.raw()`)
   */
  readonly readRawBody?: (request: Req) => Uint8Array | undefined
}

type Next = (error?: unknown) => void

export type ExpressMiddleware<Req extends IncomingMessage> = (
  req: Req,
  res: ServerResponse,
  next: Next,
) => void

/** The middleware, with per-route variants and the completion helper. */
export interface ExpressIdempotency<
  Tx extends StoreTransaction,
  Req extends IncomingMessage,
> extends ExpressMiddleware<Req> {
  /** The same middleware with route settings: `idempotency.route({ required: true })`. */
  route(settings: IdempotencyRouteSettings): ExpressMiddleware<Req> & KeyCheck<Req>
  /**
   * Checks only the key's format (and whether one is required), answering a bad one with 400
   * through `next(err)`. Mount it on the route before the body parser and your validation, so
   * that a bad key is answered before a bad body, as the contract's order of checks says; the
   * claim is still made where the middleware itself runs.
   */
  readonly checkKey: ExpressMiddleware<Req>
  /** The claim a request holds while its handler runs; `null` when it holds none. */
  claimOf(req: IncomingMessage): ActiveClaim<Tx> | null
  /**
   * Serialises `payload` as `res.send` would (JSON for objects), stores it as the key's
   * response inside the caller's transaction, and resolves the bytes to send with `res.send`
   * or `res.end`: the bytes stored are the bytes sent. Set the status and headers first.
   *
   * @throws {LeaseLostError} the key is no longer this request's: roll the transaction back.
   * @throws {StoreUnavailableError}
   */
  complete(res: ServerResponse, payload: unknown, tx: Tx): Promise<Buffer>
}

/** The key check that goes with a middleware of the same route settings. */
export interface KeyCheck<Req extends IncomingMessage> {
  readonly checkKey: ExpressMiddleware<Req>
}

/** Shared by every instance, so that any instance's `complete` finds a request's claim. */
const states = new WeakMap<object, HeldExchange>()
const rawBodies = new WeakMap<IncomingMessage, Uint8Array>()

/**
 * The `verify` option of Express's body parsers: keeps the raw bytes for the fingerprint.
 * `app.use(express.json({ verify: keepRawBody }))`.
 */
export function keepRawBody(req: IncomingMessage, _res: ServerResponse, buffer: Buffer): void {
  rawBodies.set(req, buffer)
}

export function expressIdempotency<
  Tx extends StoreTransaction,
  Req extends IncomingMessage = IncomingMessage,
>(options: ExpressIdempotencyOptions<Tx, Req>): ExpressIdempotency<Tx, Req> {
  const adapter = createIdempotencyAdapter(options)
  const readRawBody = options.readRawBody ?? defaultRawBody
  if (typeof readRawBody !== 'function') {
    throw new TypeError('Expected `readRawBody` to be a function.')
  }

  function rawBodyOf(req: Req): Uint8Array {
    const body = readRawBody(req)
    if (body !== undefined) return body
    // A body left out of the fingerprint would let another body under the same key get this
    // one's replay: refuse rather than guess. A body nothing read is of a content type the app
    // has no parser for: the client's to fix, as Fastify's 415 says. A body read without its
    // bytes kept is the app's.
    if (announcesBody(req.headers)) {
      if (!bodyWasRead(req)) throw new UnparsedBodyError()
      throw new TypeError(
        'the idempotency middleware found no raw body: mount express.json({ verify: keepRawBody }) (or another parser with it) before it, or pass readRawBody',
      )
    }
    return EMPTY
  }

  const checkKeyFor =
    (settings: IdempotencyRouteSettings | undefined): ExpressMiddleware<Req> =>
    (req, _res, next) => {
      try {
        adapter.open(
          req,
          req.method ?? '',
          (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/',
          headerValues(req.rawHeaders, 'idempotency-key'),
          settings,
        )
      } catch (error) {
        next(error)
        return
      }
      next()
    }

  const middlewareFor =
    (settings: IdempotencyRouteSettings | undefined): ExpressMiddleware<Req> =>
    (req, res, next) => {
      let exchange
      let begun
      try {
        exchange = adapter.open(
          req,
          req.method ?? '',
          (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/',
          headerValues(req.rawHeaders, 'idempotency-key'),
          settings,
        )
        if (exchange === null) {
          next()
          return
        }
        let signal: AbortSignal | undefined
        begun = exchange.begin(adapter.scope(req), rawBodyOf(req), () => {
          // Built only if the request has to wait.
          return (signal ??= clientGone(res))
        })
      } catch (error) {
        next(error)
        return
      }
      const keyed = exchange
      begun.then(
        (outcome) => {
          if (outcome.kind === 'replay') {
            // Answered: the handler must not run, so no next().
            sendReplay(res, outcome.replay)
            return
          }
          const requestId = () =>
            adapter.requestId?.(req) ??
            firstValue(res.getHeader('x-request-id')) ??
            firstValue(req.headers['x-request-id']) ??
            randomUUID()
          const state: HeldExchange = { exchange: keyed, requestId }
          states.set(req, state)
          states.set(res, state)
          holdResponse(res, state)
          next()
        },
        (error: unknown) => {
          next(error)
        },
      )
    }

  const middleware = middlewareFor(undefined) as ExpressIdempotency<Tx, Req>
  middleware.route = (settings) => {
    const resolved = resolveRouteSettings(settings, 'a route')
    return Object.assign(middlewareFor(resolved), { checkKey: checkKeyFor(resolved) })
  }
  ;(middleware as { checkKey: ExpressMiddleware<Req> }).checkKey = checkKeyFor(undefined)
  middleware.claimOf = (req) => (states.get(req)?.exchange.claim as ActiveClaim<Tx> | null) ?? null
  middleware.complete = async (res, payload, tx) => {
    const bytes = serializeForSend(res, payload)
    const state = states.get(res)
    if (state?.exchange.claim != null) {
      const response = state.exchange.capture(
        res.statusCode,
        (name) => res.getHeader(name),
        bytes,
        state.requestId(),
      )
      await state.exchange.completeWithin(response, tx)
    }
    return bytes
  }
  return middleware
}

const EMPTY = new Uint8Array(0)

/**
 * A keyed request whose body no parser read: its content type is none the app parses, so the
 * body can be neither fingerprinted nor used. Handed to `next(err)` with status 415, the way
 * body-parser hands on its own refusals (`status`, `statusCode`, `expose`, `type`), before the
 * key is claimed: nothing runs.
 */
export class UnparsedBodyError extends Error {
  override readonly name = 'UnparsedBodyError'
  readonly code = 'body_unparsed'
  readonly type = 'idempotency.body.unparsed'
  readonly status = 415
  readonly statusCode = 415
  readonly expose = true
  constructor() {
    super('Unsupported Media Type: no parser reads the content type of this request body')
  }
}

/** Whether a parser (or anything else) consumed the request's body stream. */
function bodyWasRead(req: IncomingMessage): boolean {
  return (
    (req as { _body?: unknown })._body === true || req.readableEnded || req.readableFlowing !== null
  )
}

function defaultRawBody(req: IncomingMessage): Uint8Array | undefined {
  const kept = rawBodies.get(req)
  if (kept !== undefined) return kept
  const { rawBody, body } = req as { rawBody?: unknown; body?: unknown }
  if (rawBody instanceof Uint8Array) return rawBody
  if (body instanceof Uint8Array) return body
  return undefined
}

function firstValue(value: HeaderValue): string | undefined {
  if (value === undefined || value === null) return undefined
  return typeof value === 'object' ? value[0] : String(value)
}

/** As Express's `res.send` and `res.json` would, with the content type set before capture. */
function serializeForSend(res: ServerResponse, payload: unknown): Buffer {
  const type = res.getHeader('content-type')
  if (payload instanceof Uint8Array) {
    if (type === undefined) res.setHeader('content-type', 'application/octet-stream')
    return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  }
  if (typeof payload === 'string') {
    if (type === undefined) res.setHeader('content-type', 'text/html; charset=utf-8')
    return Buffer.from(payload)
  }
  if (type === undefined) res.setHeader('content-type', 'application/json; charset=utf-8')
  // JSON.stringify answers undefined for undefined (and functions): an empty body.
  const text = JSON.stringify(payload) as string | undefined
  return Buffer.from(text ?? '')
}

function sendReplay(res: ServerResponse, replay: PreparedReplay): void {
  res.writeHead(replay.status, replay.headers)
  res.end(replay.body)
}

export type {
  IdempotencyOutcome,
  IdempotencyRouteSettings,
  NotStoredReason,
} from './idempotency-adapter.js'
