import type { AnyIdempotencyError, IdempotencyErrorCode } from './errors.js'
import { resumeStackTraces, suspendStackTraces } from './errors.js'

/** How an engine error is answered over HTTP: the one table every adapter and app uses. */
export interface IdempotencyErrorResponse {
  readonly status: number
  /** The `error.code` of the envelope. */
  readonly code: 'invalid_argument' | 'already_exists' | 'unavailable'
  readonly message: string
  /** Headers the status needs (`Retry-After`), never a content type. */
  readonly headers: Readonly<Record<string, string>>
}

/**
 * The `reason` of an `IdempotencyKeyInvalidError` raised for a route that requires a key when
 * the request carries none: a 400 like any other key error, with its own message.
 */
export const KEY_MISSING_REASON = 'missing'

// One answer per code, made once and frozen: every refusal of a code is the same answer, so
// that its rendering is made once too (`renderedOnce`, below).
const answer = (
  status: number,
  code: IdempotencyErrorResponse['code'],
  message: string,
  headers: Record<string, string> = {},
): IdempotencyErrorResponse =>
  Object.freeze({ status, code, message, headers: Object.freeze(headers) })

const keyMissing = answer(400, 'invalid_argument', 'Idempotency-Key header is required')
const keyInvalid = answer(400, 'invalid_argument', 'Invalid idempotency key format')
const fingerprintMismatch = answer(
  409,
  'already_exists',
  'Idempotency key reused with different request parameters',
)
const inProgress = answer(
  409,
  'already_exists',
  'Request is still in progress. Please retry later.',
  {
    'retry-after': '1',
  },
)
const storeUnavailable = answer(
  503,
  'unavailable',
  'The idempotency store is unavailable. Please retry later.',
  { 'retry-after': '1' },
)

/**
 * Maps an engine error to status, envelope code, message and headers. The same code (and, for
 * a key error, the same reason) always gets the same frozen object.
 *
 * `lease_lost` answers like `in_progress`: another request now owns the key, so the client's
 * retry with the same key gets that request's outcome. `wait_aborted` has no reader (the
 * client left); it is answered as `in_progress` so that nothing is ever stored for it.
 */
export function toIdempotencyErrorResponse(error: AnyIdempotencyError): IdempotencyErrorResponse {
  switch (error.code) {
    case 'key_invalid':
      return error.reason === KEY_MISSING_REASON ? keyMissing : keyInvalid
    case 'fingerprint_mismatch':
      return fingerprintMismatch
    case 'in_progress':
    case 'wait_aborted':
    case 'lease_lost':
      return inProgress
    case 'store_unavailable':
      return storeUnavailable
  }
}

/** The JSON error envelope of the contract, as bytes ready to send. */
export function renderErrorEnvelope(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } })
}

/** An error answer ready to send: its headers include the body's `content-type`. */
export interface RenderedError {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/** Turns the table's answer for an engine error into a response. */
export type IdempotencyErrorRenderer = (
  answer: IdempotencyErrorResponse,
  error: AnyIdempotencyError,
) => RenderedError

/**
 * The built-in renderers depend on the answer alone, and there is one answer per code: each
 * rendering is made once, frozen, and handed out for every refusal.
 */
function renderedOnce(
  render: (answer: IdempotencyErrorResponse) => RenderedError,
): IdempotencyErrorRenderer {
  const made = new WeakMap<IdempotencyErrorResponse, RenderedError>()
  return (answer) => {
    let rendered = made.get(answer)
    if (rendered === undefined) {
      const { status, headers, body } = render(answer)
      rendered = Object.freeze({ status, headers: Object.freeze(headers), body })
      made.set(answer, rendered)
    }
    return rendered
  }
}

/** `{"error":{"code","message"}}` as `application/json`: the contract's envelope. */
export const renderEnvelopeError: IdempotencyErrorRenderer = renderedOnce((answer) => ({
  status: answer.status,
  headers: { ...answer.headers, 'content-type': 'application/json; charset=utf-8' },
  body: renderErrorEnvelope(answer.code, answer.message),
}))

const STATUS_TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  409: 'Conflict',
  503: 'Service Unavailable',
}

/**
 * RFC 9457 problem details as `application/problem+json`: `type` is `about:blank`, so `title`
 * is the status's phrase; `detail` is the table's message and the extension member `code` its
 * envelope code, which clients match on.
 */
export const renderProblemDetails: IdempotencyErrorRenderer = renderedOnce((answer) => ({
  status: answer.status,
  headers: { ...answer.headers, 'content-type': 'application/problem+json; charset=utf-8' },
  body: JSON.stringify({
    type: 'about:blank',
    title: STATUS_TITLES[answer.status] ?? 'Error',
    status: answer.status,
    detail: answer.message,
    code: answer.code,
  }),
}))

const httpErrorBrand = Symbol.for('@ticksupply/idempotency.http-error')

/**
 * An engine error on its way to the app's error handler, the way `@fastify/rate-limit` and
 * `http-errors` hand theirs on: `statusCode`/`status` and `headers` for any framework's
 * default handler, `cause` for an app that maps engine errors itself (through
 * {@link toIdempotencyErrorResponse}), and `response`, the adapter's rendering of it (the
 * envelope unless the adapter was given another renderer), for an app that sends it as is.
 */
export class IdempotencyHttpError extends Error {
  override readonly name = 'IdempotencyHttpError'
  readonly statusCode: number
  readonly status: number
  /** The engine's code, e.g. `fingerprint_mismatch`. */
  readonly code: IdempotencyErrorCode
  /** Headers the status needs (`Retry-After`); a framework's default error handler sets them. */
  readonly headers: Readonly<Record<string, string>>
  /** The answer rendered by the adapter's `renderError`. */
  readonly response: RenderedError
  /** A client error, safe to show (the `http-errors` convention). */
  readonly expose = true
  override readonly cause: AnyIdempotencyError
  readonly [httpErrorBrand] = true

  constructor(error: AnyIdempotencyError, render: IdempotencyErrorRenderer = renderEnvelopeError) {
    const answer = toIdempotencyErrorResponse(error)
    // Its trace would only show where the adapter wrapped the engine's error: a fault's own
    // trace is its cause's (and the store error's, below it).
    const limit = suspendStackTraces()
    super(answer.message, { cause: error })
    if (limit !== undefined) resumeStackTraces(limit)
    this.cause = error
    this.code = error.code
    this.statusCode = answer.status
    this.status = answer.status
    this.headers = answer.headers
    this.response = render(answer, error)
  }
}

/** Works across duplicate installs, like {@link isIdempotencyError}. */
export function isIdempotencyHttpError(value: unknown): value is IdempotencyHttpError {
  return typeof value === 'object' && value !== null && httpErrorBrand in value
}
