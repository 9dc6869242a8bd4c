import { AlreadyExistsError } from './already-exists-error.js'
import type { ApiError, ApiErrorInit } from './api-error.js'
import { IdempotencyKeyReusedError } from './idempotency-key-reused-error.js'
import { InternalError } from './internal-error.js'
import { InvalidArgumentError } from './invalid-argument-error.js'
import { NotFoundError } from './not-found-error.js'
import { PaymentRequiredError } from './payment-required-error.js'
import { PermissionDeniedError } from './permission-denied-error.js'
import { RateLimitedError } from './rate-limited-error.js'
import { RequestInProgressError } from './request-in-progress-error.js'
import { RequestTimeoutError } from './request-timeout-error.js'
import { isRetryableStatus } from './retryable-status.js'
import { UnauthenticatedError } from './unauthenticated-error.js'
import { UnavailableError } from './unavailable-error.js'
import { UnexpectedResponseError } from './unexpected-response-error.js'

/** The two idempotency conflicts share `already_exists`; only the message tells them apart. */
export const KEY_REUSED_MESSAGE = 'Idempotency key reused with different request parameters'
export const IN_PROGRESS_MESSAGE = 'Request is still in progress. Please retry later.'

const CLASS_BY_CODE: Readonly<Record<string, new (init: ApiErrorInit) => ApiError>> = {
  invalid_argument: InvalidArgumentError,
  unauthenticated: UnauthenticatedError,
  payment_required: PaymentRequiredError,
  permission_denied: PermissionDeniedError,
  not_found: NotFoundError,
  request_timeout: RequestTimeoutError,
  already_exists: AlreadyExistsError,
  rate_limited: RateLimitedError,
  internal: InternalError,
  unavailable: UnavailableError,
}

export interface ErrorResponse {
  readonly status: number
  readonly bodyText: string
  readonly requestId: string | undefined
  readonly retryAfterMs: number | undefined
}

interface Envelope {
  readonly code: string
  readonly message: string
  readonly details: Readonly<Record<string, unknown>> | undefined
}

/** Turns an error response into the typed error for its envelope code. */
export function createApiError(response: ErrorResponse): ApiError {
  const envelope = parseEnvelope(response.bodyText)
  const base = {
    status: response.status,
    requestId: response.requestId,
    retryAfterMs: response.retryAfterMs,
  }
  if (envelope === undefined) {
    return new UnexpectedResponseError({
      ...base,
      message: `HTTP ${String(response.status)} without an error envelope${excerpt(response.bodyText)}`,
    })
  }
  const init: ApiErrorInit = {
    ...base,
    apiCode: envelope.code,
    message: envelope.message,
    details: envelope.details,
  }
  if (envelope.code === 'already_exists' && response.status === 409) {
    // Matched on the exact message the contract fixes; a duplicate resource has another one.
    if (envelope.message === KEY_REUSED_MESSAGE) return new IdempotencyKeyReusedError(init)
    if (envelope.message === IN_PROGRESS_MESSAGE) return new RequestInProgressError(init)
  }
  const ErrorClass = Object.hasOwn(CLASS_BY_CODE, envelope.code)
    ? CLASS_BY_CODE[envelope.code]
    : undefined
  if (ErrorClass === undefined) return new UnexpectedResponseError(init)
  const error = new ErrorClass(init)
  // A code and a status that disagree on retrying are outside the contract; the status wins
  // (see isRetryableStatus), and the class must not claim the code's retryability instead.
  if (error.retryable !== isRetryableStatus(response.status)) {
    return new UnexpectedResponseError({
      ...init,
      message: `HTTP ${String(response.status)} with the code ${envelope.code}, which goes with another status: ${envelope.message}`,
    })
  }
  return error
}

function parseEnvelope(bodyText: string): Envelope | undefined {
  let body: unknown
  try {
    body = JSON.parse(bodyText)
  } catch {
    return undefined
  }
  if (!isRecord(body) || !isRecord(body['error'])) return undefined
  const { code, message, details } = body['error']
  if (typeof code !== 'string' || typeof message !== 'string') return undefined
  return { code, message, details: isRecord(details) ? details : undefined }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function excerpt(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  if (flat === '') return ''
  return `: ${flat.length > 200 ? `${flat.slice(0, 200)}…` : flat}`
}
