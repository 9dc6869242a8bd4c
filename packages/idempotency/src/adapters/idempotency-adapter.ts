import { hash } from 'node:crypto'
import type { ActiveClaim, IdempotencyEngine, IdempotentRequest } from '../core/engine.js'
import type { IdempotencyErrorRenderer } from '../core/error-response.js'
import {
  IdempotencyHttpError,
  KEY_MISSING_REASON,
  renderEnvelopeError,
  renderProblemDetails,
} from '../core/error-response.js'
import type { IdempotencyErrorCode } from '../core/errors.js'
import type { BodyFingerprint } from '../core/fingerprint.js'
import { IdempotencyKeyInvalidError, LeaseLostError, isIdempotencyError } from '../core/errors.js'
import { parseIdempotencyKeyHeader } from '../core/key.js'
import type { StoredResponse } from '../core/record.js'
import { NEVER_STORED_HEADER_NAMES, STORED_HEADER_NAMES, isStorableStatus } from '../core/record.js'
import type { StoreTransaction } from '../core/store.js'

/**
 * What every adapter shares: option validation, the key rules, the capture of a response
 * (status, stored headers, bytes), the decision to store or release, replays, and the outcome
 * hooks. The framework files only translate between their framework and this.
 */

/** The methods whose `Idempotency-Key` counts; PUT, GET, HEAD, OPTIONS and PATCH ignore it. */
export const KEYED_METHODS: ReadonlySet<string> = new Set(['POST', 'DELETE'])

/**
 * The headers of the operation's answer that describe its body or its resource. When the store
 * refuses that answer (a 503, a lost claim's 409), the error goes out instead, and none of them
 * may go with it: a `Content-Encoding: gzip` a compression hook set would make the envelope
 * unreadable, a `Location` would point at a resource the key does not stand for.
 */
export const OPERATION_ANSWER_HEADERS: readonly string[] = [
  'content-type',
  'content-length',
  'content-encoding',
  'content-language',
  'content-location',
  'content-range',
  'content-disposition',
  'location',
  'etag',
  'last-modified',
]

/** Per-route settings, besides the adapter's own options. */
export interface IdempotencyRouteSettings {
  /**
   * `false`: the route ignores `Idempotency-Key` completely.
   * @default true
   */
  readonly enabled?: boolean
  /**
   * A POST or DELETE without the header is refused with 400.
   * @default the adapter's `required`
   */
  readonly required?: boolean
}

/**
 * Validates route settings when the route is set up (a typo fails the start, not a request):
 * `true`/`undefined` (the adapter's options), `false` (opted out), or the settings object.
 */
export function resolveRouteSettings(value: unknown, route: string): IdempotencyRouteSettings {
  if (value === undefined || value === true) return {}
  if (value === false) return { enabled: false }
  if (typeof value === 'object' && value !== null) {
    const { enabled, required, ...rest } = value as Record<string, unknown>
    if (
      Object.keys(rest).length === 0 &&
      (enabled === undefined || typeof enabled === 'boolean') &&
      (required === undefined || typeof required === 'boolean')
    ) {
      return value
    }
  }
  throw new TypeError(
    `Expected the idempotency settings of ${route} to be a boolean or { enabled?: boolean, required?: boolean }.`,
  )
}

/** Whether a Node request announces a body (a length above zero, or chunked framing). */
export function announcesBody(
  headers: Readonly<Record<string, string | string[] | undefined>>,
): boolean {
  const length = headers['content-length']
  return (length !== undefined && length !== '0') || headers['transfer-encoding'] !== undefined
}

/** Aborts when a Node response's connection closes before the response has been sent. */
export function clientGone(response: {
  once(event: 'close', listener: () => void): unknown
  readonly writableFinished: boolean
}): AbortSignal {
  const controller = new AbortController()
  response.once('close', () => {
    if (!response.writableFinished) controller.abort()
  })
  return controller.signal
}

/** Why a response the operation produced was not stored (its key was given back). */
export type NotStoredReason =
  /** `storeResponse` said no: by default a 5xx or a 408. */
  | 'status'
  /** Larger than `maxStoredBodyBytes`. */
  | 'body_too_large'
  /** A streamed body whose bytes the adapter does not see whole. */
  | 'streamed'
  /** The operation threw without producing a response. */
  | 'threw'
  /** The response never finished (the connection died before it was written). */
  | 'unfinished'

interface OutcomeBase {
  /**
   * SHA-256 of the canonical key, 32 hex characters: enough to correlate the requests of one
   * key in logs, never the key itself. `null` when the key was invalid or missing.
   */
  readonly keyHash: string | null
  /** The scope (account), once computed. */
  readonly scope: string | undefined
  readonly method: string
  /** The request's path, without the query string (which may carry secrets). */
  readonly path: string
}

/** What became of one keyed request; given to `onOutcome` after the answer has gone out. */
export type IdempotencyOutcome =
  /** The operation ran and its response is stored for replay. */
  | (OutcomeBase & { readonly type: 'stored'; readonly status: number })
  /** The operation ran (or tried to); its response is not stored and the key is free again. */
  | (OutcomeBase & {
      readonly type: 'not_stored'
      readonly reason: NotStoredReason
      readonly status: number | undefined
    })
  /** The stored response was sent again. */
  | (OutcomeBase & { readonly type: 'replayed'; readonly status: number })
  /** Answered with an idempotency error (400, 409, 503); the operation did not run. */
  | (OutcomeBase & {
      readonly type: 'rejected'
      readonly code: IdempotencyErrorCode
      readonly status: number
    })

/** The options every adapter takes; `Req` is what the framework calls a request. */
export interface IdempotencyAdapterOptions<Tx extends StoreTransaction, Req> {
  /** The engine that claims, replays and waits. */
  readonly engine: IdempotencyEngine<Tx>
  /** Whose keys these are (the account): runs after authentication. */
  readonly scope: (request: Req) => string
  /**
   * Every POST and DELETE must carry a key: one without answers 400. A route may say
   * otherwise.
   * @default false
   */
  readonly required?: boolean
  /**
   * Requests for which the header is ignored, as on a route that opted out.
   * @default none
   */
  readonly skip?: (request: Req) => boolean
  /**
   * Which responses are stored for replay; the others give the key back, so that a retry
   * runs the operation again.
   * @default status below 500 and not 408
   */
  readonly storeResponse?: (response: StoredResponse) => boolean
  /**
   * Response headers stored and replayed besides `Content-Type` and `Location` (any letter
   * case). Cookies, credentials, framing and per-answer headers are refused.
   * @default []
   */
  readonly storedHeaders?: readonly string[]
  /**
   * Larger bodies are answered but not stored: the key is given back, with a warning.
   * @default 1_048_576 (1 MiB)
   */
  readonly maxStoredBodyBytes?: number
  /**
   * How idempotency errors are rendered: the contract's envelope, RFC 9457 problem details, or
   * a function of the table's answer.
   * @default 'envelope'
   */
  readonly renderError?: 'envelope' | 'problem' | IdempotencyErrorRenderer
  /**
   * Called once per keyed request with its outcome, after the answer has been handed to the
   * framework. May be async: never awaited, never delays or changes an answer.
   * @default none
   */
  readonly onOutcome?: (outcome: IdempotencyOutcome) => unknown
  /**
   * Where errors thrown by `onOutcome` (or its rejected promises) go.
   * @default console.error
   */
  readonly onHookError?: (error: unknown, outcome: IdempotencyOutcome) => void
  /**
   * The id a replay names in `Original-Request`.
   * @default the framework's request id, else the response's or request's `X-Request-Id`
   */
  readonly requestId?: (request: Req) => string
}

/** A replay ready to send: the stored answer with `Idempotent-Replayed` and `Original-Request`. */
export interface PreparedReplay {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
}

/** What {@link KeyedExchange.begin} leads to: a replay to send, or the claim to run under. */
export type Begun<Tx extends StoreTransaction> =
  | { readonly kind: 'replay'; readonly replay: PreparedReplay }
  | { readonly kind: 'claimed'; readonly claim: ActiveClaim<Tx> }

/** A response header as frameworks hand it out. */
export type HeaderValue = string | number | readonly string[] | undefined | null

export const DEFAULT_MAX_STORED_BODY_BYTES = 1_048_576

/** The adapter core, validated once, at registration. */
export interface IdempotencyAdapter<Tx extends StoreTransaction, Req> {
  readonly engine: IdempotencyEngine<Tx>
  readonly scope: (request: Req) => string
  readonly requestId: ((request: Req) => string) | undefined
  readonly render: IdempotencyErrorRenderer
  /**
   * Looks at a request: `null` when it is not keyed (a method that ignores the header, an
   * opted-out route, a skipped request, no header where none is required).
   *
   * @param keyHeaderValues one entry per `Idempotency-Key` header line
   * @throws {IdempotencyHttpError} a bad key, or none where one is required (400)
   */
  open(
    request: Req,
    method: string,
    pathWithQuery: string,
    keyHeaderValues: readonly string[],
    route?: IdempotencyRouteSettings,
  ): KeyedExchange<Tx> | null
}

/**
 * Validates the options (a `TypeError` naming the bad one) and fills in the defaults, so that
 * a misconfigured adapter fails at start, not with a 500 per request.
 */
export function createIdempotencyAdapter<Tx extends StoreTransaction, Req>(
  options: IdempotencyAdapterOptions<Tx, Req>,
): IdempotencyAdapter<Tx, Req> {
  // Checked at run time too: JavaScript callers get a TypeError, not a crash on first use.
  const given = options as Partial<IdempotencyAdapterOptions<Tx, Req>> | undefined
  if (typeof given !== 'object') throw new TypeError('Expected idempotency adapter options.')
  const engine = given.engine as Partial<IdempotencyEngine<Tx>> | undefined
  if (typeof engine !== 'object' || typeof engine.begin !== 'function') {
    throw new TypeError(
      'Expected `engine` to be an idempotency engine (from createIdempotencyEngine).',
    )
  }
  if (typeof given.scope !== 'function') {
    throw new TypeError('Expected `scope` to be a function of the request that returns a string.')
  }
  for (const name of ['skip', 'storeResponse', 'onOutcome', 'onHookError', 'requestId'] as const) {
    if (given[name] !== undefined && typeof given[name] !== 'function') {
      throw new TypeError(`Expected \`${name}\` to be a function.`)
    }
  }
  if (given.required !== undefined && typeof given.required !== 'boolean') {
    throw new TypeError('Expected `required` to be a boolean.')
  }
  const maxStoredBodyBytes = given.maxStoredBodyBytes ?? DEFAULT_MAX_STORED_BODY_BYTES
  if (!Number.isSafeInteger(maxStoredBodyBytes) || maxStoredBodyBytes < 0) {
    throw new TypeError(
      `Expected \`maxStoredBodyBytes\` to be a non-negative integer, got ${String(given.maxStoredBodyBytes)}.`,
    )
  }
  const settings: Settings<Tx, Req> = {
    engine: options.engine,
    required: given.required ?? false,
    skip: given.skip,
    storeResponse: given.storeResponse ?? ((response) => isStorableStatus(response.status)),
    storedHeaderNames: resolveStoredHeaders(given.storedHeaders),
    maxStoredBodyBytes,
    render: resolveRenderer(given.renderError),
    report: outcomeReporter(given.onOutcome, given.onHookError ?? reportHookError),
    warnedTooLarge: false,
  }
  return {
    engine: options.engine,
    scope: options.scope,
    requestId: given.requestId,
    render: settings.render,
    open(request, method, pathWithQuery, keyHeaderValues, route) {
      if (!KEYED_METHODS.has(method)) return null
      if (route?.enabled === false) return null
      if (settings.skip?.(request) === true) return null
      const exchange = new KeyedExchange(settings, method, pathWithQuery)
      const key = parseKey(keyHeaderValues, route?.required ?? settings.required, exchange)
      if (key === null) return null
      exchange.key = key
      return exchange
    },
  }
}

interface Settings<Tx extends StoreTransaction, Req> {
  readonly engine: IdempotencyEngine<Tx>
  readonly required: boolean
  readonly skip: ((request: Req) => boolean) | undefined
  readonly storeResponse: (response: StoredResponse) => boolean
  readonly storedHeaderNames: readonly string[]
  readonly maxStoredBodyBytes: number
  readonly render: IdempotencyErrorRenderer
  readonly report: (outcome: () => IdempotencyOutcome) => void
  warnedTooLarge: boolean
}

function parseKey<Tx extends StoreTransaction>(
  values: readonly string[],
  required: boolean,
  exchange: KeyedExchange<Tx>,
): string | null {
  try {
    const key = parseIdempotencyKeyHeader(values)
    if (key === null && required) throw new IdempotencyKeyInvalidError(KEY_MISSING_REASON)
    return key
  } catch (error) {
    throw exchange.reject(error)
  }
}

/** A header name as RFC 9110 defines a token. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/

function resolveStoredHeaders(extra: readonly string[] | undefined): readonly string[] {
  if (extra === undefined) return STORED_HEADER_NAMES
  if (!Array.isArray(extra)) throw new TypeError('Expected `storedHeaders` to be an array.')
  const names = new Set<string>(STORED_HEADER_NAMES)
  for (const value of extra as unknown[]) {
    const name = typeof value === 'string' ? value.toLowerCase() : ''
    if (!TOKEN.test(name)) {
      throw new TypeError(`Expected \`storedHeaders\` to hold header names, got ${String(value)}.`)
    }
    if (NEVER_STORED_HEADER_NAMES.has(name)) {
      throw new TypeError(`\`storedHeaders\` may not keep ${name}: it is never stored.`)
    }
    names.add(name)
  }
  return [...names]
}

function resolveRenderer(
  renderError: IdempotencyAdapterOptions<StoreTransaction, unknown>['renderError'],
): IdempotencyErrorRenderer {
  if (renderError === undefined || renderError === 'envelope') return renderEnvelopeError
  if (renderError === 'problem') return renderProblemDetails
  if (typeof renderError === 'function') return renderError
  throw new TypeError(
    `Expected \`renderError\` to be 'envelope', 'problem' or a function, got ${String(renderError)}.`,
  )
}

const reportHookError = (error: unknown, outcome: IdempotencyOutcome): void => {
  console.error(`@ticksupply/idempotency: the onOutcome hook failed on a ${outcome.type}`, error)
}

/**
 * Runs `onOutcome` after the current I/O has gone out (the answer was handed to the
 * framework before this is called): a slow or failing hook never delays or changes an answer.
 * The outcome is built only when there is a hook to give it to.
 */
function outcomeReporter(
  onOutcome: ((outcome: IdempotencyOutcome) => unknown) | undefined,
  onHookError: (error: unknown, outcome: IdempotencyOutcome) => void,
): (outcome: () => IdempotencyOutcome) => void {
  if (onOutcome === undefined) return () => undefined
  const fail = (error: unknown, outcome: IdempotencyOutcome) => {
    try {
      onHookError(error, outcome)
    } catch {
      // A reporter that throws too has nowhere left to report to.
    }
  }
  return (build) => {
    const outcome = build()
    setImmediate(() => {
      try {
        const result = onOutcome(outcome)
        if (result instanceof Promise) {
          result.catch((error: unknown) => {
            fail(error, outcome)
          })
        }
      } catch (error) {
        fail(error, outcome)
      }
    })
  }
}

function hashKey(key: string): string {
  return hash('sha256', key, 'hex').slice(0, 32)
}

/** Statuses whose answers carry no body (and so no content type) on the wire. */
function hasNoBody(status: number): boolean {
  return status < 200 || status === 204 || status === 304
}

const EMPTY = new Uint8Array(0)

/**
 * One keyed request, from its key to its outcome. The framework adapter calls `begin`, runs
 * the operation while `claim` is held, then `finish`es with the response it is about to send
 * (or the operation completes inside its own transaction with `completeWithin`).
 */
export class KeyedExchange<Tx extends StoreTransaction> {
  key = ''
  scope: string | undefined
  claim: ActiveClaim<Tx> | null = null
  /** Set once the exchange's outcome is decided: later hooks of the request pass through. */
  done = false
  readonly #settings: Settings<Tx, never>
  readonly #method: string
  readonly #pathWithQuery: string

  constructor(settings: Settings<Tx, never>, method: string, pathWithQuery: string) {
    this.#settings = settings
    this.#method = method
    this.#pathWithQuery = pathWithQuery
  }

  /**
   * Claims the key, or gets the replay, or waits for the original.
   *
   * @param signal read only if the request has to wait: an adapter builds it lazily
   * @throws {IdempotencyHttpError} mismatch, still in progress, client gone, store down
   */
  async begin(
    scope: string,
    body: Uint8Array | BodyFingerprint,
    signal: () => AbortSignal,
  ): Promise<Begun<Tx>> {
    this.scope = scope
    let begun
    try {
      begun = await this.#settings.engine.begin(
        new ExchangeRequest(scope, this.key, this.#method, this.#pathWithQuery, body, signal),
      )
    } catch (error) {
      throw this.reject(error)
    }
    if (begun.kind === 'replay') {
      this.done = true
      const { status } = begun.response
      this.#report(() => ({ type: 'replayed', status }))
      return { kind: 'replay', replay: prepareReplay(begun.response) }
    }
    this.claim = begun.claim
    return begun
  }

  /**
   * The response as it is stored: status, the stored headers, the exact bytes about to be
   * sent. A bodyless status keeps neither body nor content type, as none goes on the wire.
   */
  capture(
    status: number,
    header: (name: string) => HeaderValue,
    body: Uint8Array,
    requestId: string,
  ): StoredResponse {
    const headers: Record<string, string> = {}
    const noBody = hasNoBody(status)
    for (const name of this.#settings.storedHeaderNames) {
      if (noBody && name === 'content-type') continue
      const value = header(name)
      if (value === undefined || value === null) continue
      headers[name] = typeof value === 'object' ? value.join(', ') : String(value)
    }
    return { status, headers, body: noBody ? EMPTY : body, requestId }
  }

  /** Bodies larger than this are answered but not stored. */
  get maxStoredBodyBytes(): number {
    return this.#settings.maxStoredBodyBytes
  }

  /** Whether the response still has to go through {@link finish}. */
  get pending(): boolean {
    const claim = this.claim
    if (claim === null || this.done) return false
    // A lost claim goes on to finish(), which refuses it: its answer is not the key's answer.
    return !claim.settled || claim.state === 'lost'
  }

  /**
   * Ends the claim for the response about to be sent: stores it, or gives the key back (a
   * response `storeResponse` refuses, or one too large to keep). After this the response may
   * be sent.
   *
   * @throws {IdempotencyHttpError} the claim was lost (another request owns the key), or the
   *   store failed to take the response: send the error instead.
   */
  async finish(response: StoredResponse): Promise<void> {
    const claim = this.claim
    if (claim === null || this.done) return
    if (!this.pending) {
      this.sent(response.status)
      return
    }
    this.done = true
    const reason = this.#refusal(response)
    try {
      if (claim.state === 'lost') await claim.finish(response)
      else if (reason === undefined) await claim.complete(response)
      else await claim.release()
    } catch (error) {
      // A release that failed is retried in the background: the operation's own answer (which
      // is not stored anyway) still goes out.
      if (reason !== undefined && isIdempotencyError(error) && error.code === 'store_unavailable') {
        this.#report(() => ({ type: 'not_stored', reason, status: response.status }))
        return
      }
      throw this.reject(error)
    }
    if (reason === undefined) this.#report(() => ({ type: 'stored', status: response.status }))
    else this.#report(() => ({ type: 'not_stored', reason, status: response.status }))
  }

  /**
   * Completes the claim inside the operation's transaction: the operation's writes and the
   * stored response commit together, or neither does. A response that is not to be stored
   * leaves the claim held, for {@link finish} to give back.
   *
   * @throws {LeaseLostError} the key is no longer this request's: roll the transaction back.
   * @throws {StoreUnavailableError}
   */
  async completeWithin(response: StoredResponse, tx: Tx): Promise<void> {
    const claim = this.claim
    if (claim === null) return
    if (this.#refusal(response) !== undefined) return
    // A claim given back already (its request was answered meanwhile, e.g. by a deadline)
    // must not commit: a retry could run the operation again.
    if (claim.state === 'released' || claim.state === 'abandoned') throw new LeaseLostError()
    await claim.complete(response, tx)
  }

  /**
   * The response goes out without {@link finish}, its claim settled already (completed inside
   * the operation's transaction): records the outcome.
   */
  sent(status: number): void {
    const claim = this.claim
    if (claim === null || this.done || !claim.settled) return
    this.done = true
    if (claim.state === 'completed') this.#report(() => ({ type: 'stored', status }))
  }

  /** The response cannot be stored (streamed, never finished) or there is none: free the key. */
  async giveUp(reason: NotStoredReason, status?: number): Promise<void> {
    const claim = this.claim
    if (claim === null || this.done) return
    this.done = true
    if (!claim.settled) await claim.release().catch(() => undefined)
    this.#report(() => ({ type: 'not_stored', reason, status }))
  }

  /** Turns an engine error into the error the app's handler receives, and reports it. */
  reject(error: unknown): unknown {
    if (!isIdempotencyError(error)) return error
    this.done = true
    const httpError = new IdempotencyHttpError(error, this.#settings.render)
    this.#report(() => ({ type: 'rejected', code: error.code, status: httpError.statusCode }))
    return httpError
  }

  /** Why `response` is not to be stored, if it is not. */
  #refusal(response: StoredResponse): NotStoredReason | undefined {
    const settings = this.#settings
    if (!settings.storeResponse(response)) return 'status'
    if (response.body.byteLength <= settings.maxStoredBodyBytes) return undefined
    if (!settings.warnedTooLarge) {
      settings.warnedTooLarge = true
      warn(
        `a ${String(response.body.byteLength)}-byte response to ${this.#method} ${pathOf(this.#pathWithQuery)} exceeds maxStoredBodyBytes (${String(settings.maxStoredBodyBytes)}): it was answered but not stored, and its key was given back, so a retry runs the operation again. Raise maxStoredBodyBytes or answer less. (Warned once; every case is an onOutcome 'not_stored' with reason 'body_too_large'.)`,
      )
    }
    return 'body_too_large'
  }

  #report(
    specific: () =>
      | { type: 'stored'; status: number }
      | { type: 'replayed'; status: number }
      | { type: 'not_stored'; reason: NotStoredReason; status: number | undefined }
      | { type: 'rejected'; code: IdempotencyErrorCode; status: number },
  ): void {
    this.#settings.report(() => ({
      keyHash: this.key === '' ? null : hashKey(this.key),
      scope: this.scope,
      method: this.#method,
      path: pathOf(this.#pathWithQuery),
      ...specific(),
    }))
  }
}

/**
 * The request as the engine sees it, its signal built only if it is read (when the request has
 * to wait). A class, not an object literal with a getter: with the literal, whose getter's
 * closure holds the framework's reply, a replay's request and reply outlived the young
 * generation (some 4 KB per request promoted, scavenges ten times slower, measured with V8's
 * sampling heap profiler), as if the literal's accessor lived in the old generation.
 */
class ExchangeRequest implements IdempotentRequest {
  readonly scope: string
  readonly key: string
  readonly method: string
  readonly pathWithQuery: string
  readonly body: Uint8Array | BodyFingerprint
  readonly #signal: () => AbortSignal

  constructor(
    scope: string,
    key: string,
    method: string,
    pathWithQuery: string,
    body: Uint8Array | BodyFingerprint,
    signal: () => AbortSignal,
  ) {
    this.scope = scope
    this.key = key
    this.method = method
    this.pathWithQuery = pathWithQuery
    this.body = body
    this.#signal = signal
  }

  get signal(): AbortSignal {
    return this.#signal()
  }
}

function pathOf(pathWithQuery: string): string {
  const query = pathWithQuery.indexOf('?')
  return query === -1 ? pathWithQuery : pathWithQuery.slice(0, query)
}

function warn(message: string): void {
  const text = `@ticksupply/idempotency: ${message}`
  if (typeof process === 'object' && typeof process.emitWarning === 'function') {
    process.emitWarning(text, { code: 'TICKSUPPLY_IDEMPOTENCY_BODY_TOO_LARGE' })
  } else {
    console.warn(text)
  }
}

/**
 * A replay's headers and body, built once per stored response: stores hand out the same
 * object for every replay of a cached record.
 */
const prepared = new WeakMap<StoredResponse, PreparedReplay>()

export function prepareReplay(response: StoredResponse): PreparedReplay {
  let replay = prepared.get(response)
  if (replay === undefined) {
    replay = {
      status: response.status,
      headers: {
        ...response.headers,
        'idempotent-replayed': 'true',
        'original-request': response.requestId,
      },
      body: response.body,
    }
    prepared.set(response, replay)
  }
  return replay
}
