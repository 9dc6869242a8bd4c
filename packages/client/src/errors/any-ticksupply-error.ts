import type { AlreadyExistsError } from './already-exists-error.js'
import type { IdempotencyKeyReusedError } from './idempotency-key-reused-error.js'
import type { InternalError } from './internal-error.js'
import type { InvalidArgumentError } from './invalid-argument-error.js'
import type { NetworkError } from './network-error.js'
import type { NotFoundError } from './not-found-error.js'
import type { PaymentRequiredError } from './payment-required-error.js'
import type { PermissionDeniedError } from './permission-denied-error.js'
import type { RateLimitedError } from './rate-limited-error.js'
import type { RequestInProgressError } from './request-in-progress-error.js'
import type { RequestTimeoutError } from './request-timeout-error.js'
import type { TimeoutError } from './timeout-error.js'
import { TICKSUPPLY_ERROR } from './ticksupply-error.js'
import type { UnauthenticatedError } from './unauthenticated-error.js'
import type { UnavailableError } from './unavailable-error.js'
import type { UnexpectedResponseError } from './unexpected-response-error.js'

/**
 * Every error the client throws for a request, discriminated by `code`, so that
 * `switch (error.code)` is checked for exhaustiveness. The two idempotency 409s share the
 * API code `already_exists` with duplicate resources; the client gives each its own `code`
 * (`apiCode` keeps the wire value) because a caller must treat them differently.
 */
export type AnyTicksupplyError =
  | InvalidArgumentError
  | UnauthenticatedError
  | PaymentRequiredError
  | PermissionDeniedError
  | NotFoundError
  | RequestTimeoutError
  | AlreadyExistsError
  | IdempotencyKeyReusedError
  | RequestInProgressError
  | RateLimitedError
  | InternalError
  | UnavailableError
  | UnexpectedResponseError
  | NetworkError
  | TimeoutError

export type TicksupplyErrorCode = AnyTicksupplyError['code']

/** Whether `value` is an error thrown by this client (works across duplicate installs). */
export function isTicksupplyError(value: unknown): value is AnyTicksupplyError {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { [TICKSUPPLY_ERROR]?: unknown })[TICKSUPPLY_ERROR] === true
  )
}
