import type { FastifyReply, FastifyRequest } from 'fastify'
import type { BodyFingerprint } from '../core/fingerprint.js'
import type { StoreTransaction } from '../core/store.js'
import type { KeyedExchange } from './idempotency-adapter.js'

/**
 * The Fastify adapter's per-request state, and {@link completeReply}, the completion of a
 * reply inside the caller's transaction.
 */

/**
 * Declares the transaction type of your store, for `request.idempotencyClaim`, the plugin's
 * `engine` option and {@link completeReply}:
 *
 * ```ts
 * declare module '@ticksupply/idempotency/fastify' {
 *   interface FastifyIdempotencyTypes {
 *     transaction: SqliteTransaction
 *   }
 * }
 * ```
 *
 * Fastify merges its request type once per program, not per registration, so the engine's
 * type cannot flow from the plugin's options to the request. Without it, any
 * `StoreTransaction` is accepted.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- augmented by apps
export interface FastifyIdempotencyTypes {}

/** The transaction type declared in {@link FastifyIdempotencyTypes}, or `StoreTransaction`. */
export type FastifyIdempotencyTransaction = FastifyIdempotencyTypes extends {
  readonly transaction: infer T extends StoreTransaction
}
  ? T
  : StoreTransaction

export interface RequestState {
  readonly exchange: KeyedExchange<FastifyIdempotencyTransaction>
  readonly requestId: () => string
  /** The body's fingerprint, fed as the body streams by (without `readRawBody`). */
  body?: BodyFingerprint
  /** The stream the fingerprint is fed from. */
  bodyStream?: NodeJS.ReadableStream
  /**
   * The answer being sent came from the app's error handler: an error raised while sending it
   * cannot go there again (Fastify would fall back to a serializer that fails on the app's
   * error schemas, a 500 outside the envelope).
   */
  answersAnError?: boolean
  /** The reply's own `send`, while the adapter notes what the handler hands it. */
  send?: FastifyReply['send']
  /**
   * What the handler (or the app's error handler) last handed `reply.send`, before any onSend
   * hook, and whether the reply was already encoded then.
   */
  handed?: { readonly payload: unknown; readonly encoded: boolean; readonly error: boolean }
  /** The answer is being stored: a later `send` of the handler is ignored. */
  finishing?: boolean
  /** A replay of an answer that had a body and no `Content-Type`: it gets none either. */
  untypedReplay?: boolean
  /** The handler called `reply.hijack()`: its answer goes to `reply.raw`, held until stored. */
  hijacked?: boolean
  /** The promise of an async handler, kept in case it hijacks the reply later. */
  running?: PromiseLike<unknown>
}

const kState = Symbol('idempotency.state')

type WithState = FastifyRequest & { [kState]?: RequestState }

export const stateOf = (request: FastifyRequest): RequestState | undefined =>
  (request as WithState)[kState]

export function attachState(request: FastifyRequest, state: RequestState): void {
  ;(request as WithState)[kState] = state
}

/**
 * Serialises `payload` as `reply.send` would (the route's serializer for objects, Fastify's
 * default content types), stores it as the key's response inside the caller's transaction,
 * and resolves what to send: the bytes stored are the bytes sent. Set the status and headers
 * first; for an unkeyed request it only serialises.
 *
 * ```ts
 * const body = await db.transaction(async (tx) => {
 *   const order = await insertOrder(tx, request.body)
 *   reply.code(201).header('location', `/orders/${order.id}`)
 *   return completeReply(reply, order, tx)
 * })
 * return reply.send(body)
 * ```
 *
 * @throws {LeaseLostError} the key is no longer this request's: let the transaction roll back.
 * @throws {StoreUnavailableError}
 */
export async function completeReply(
  reply: FastifyReply,
  payload: string,
  tx: FastifyIdempotencyTransaction,
): Promise<string>
export async function completeReply(
  reply: FastifyReply,
  payload: unknown,
  tx: FastifyIdempotencyTransaction,
): Promise<string | Buffer>
export async function completeReply(
  reply: FastifyReply,
  payload: unknown,
  tx: FastifyIdempotencyTransaction,
): Promise<string | Buffer> {
  const [sent, bytes] = serializeForReply(reply, payload)
  const state = stateOf(reply.request)
  if (state?.exchange.claim != null) {
    const response = state.exchange.capture(
      reply.statusCode,
      (name) => reply.getHeader(name),
      bytes,
      state.requestId(),
    )
    await state.exchange.completeWithin(response, tx)
  }
  return sent
}

function serializeForReply(reply: FastifyReply, payload: unknown): [string | Buffer, Uint8Array] {
  const type = reply.getHeader('content-type')
  if (payload instanceof Uint8Array) {
    if (type === undefined) reply.type('application/octet-stream')
    const buffer = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
    return [buffer, buffer]
  }
  let text: string
  if (typeof payload === 'string' || payload === undefined || payload === null) {
    text = payload ?? ''
    if (type === undefined) reply.type('text/plain; charset=utf-8')
  } else {
    const serialized = reply.serialize(payload) as string | Buffer
    text = typeof serialized === 'string' ? serialized : serialized.toString()
    if (type === undefined) reply.type('application/json; charset=utf-8')
  }
  // Fastify adds the charset to a JSON type set without one, at send time.
  if (typeof type === 'string' && type.includes('json') && !/;\s*charset=/i.test(type)) {
    reply.type(`${type}; charset=utf-8`)
  }
  return [text, Buffer.from(text)]
}
