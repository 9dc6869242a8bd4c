/**
 * Every condition the engine reports to a caller is one of these classes, each with a literal
 * `code`. Switch on `code` (see {@link AnyIdempotencyError}); `instanceof` breaks across
 * duplicate installs, so {@link isIdempotencyError} checks the brand instead.
 */
export type IdempotencyErrorCode =
  | 'key_invalid'
  | 'fingerprint_mismatch'
  | 'in_progress'
  | 'wait_aborted'
  | 'lease_lost'
  | 'store_unavailable'

const brand = Symbol.for('@ticksupply/idempotency.error')

export abstract class IdempotencyError extends Error {
  abstract readonly code: IdempotencyErrorCode
  readonly [brand] = true
  /**
   * @param stack `false` for an answer to the request (a bad key, a reused key, a wait that
   *   ran out), which is no fault of the code: its stack trace (with the async frames of every
   *   hook it passed) cost more than the rest of a 409 (decision 0010). A fault (a lost lease,
   *   a store down) keeps its trace.
   */
  constructor(message: string, options?: ErrorOptions, stack = true) {
    const limit = stack ? undefined : suspendStackTraces()
    super(message, options)
    if (limit !== undefined) resumeStackTraces(limit)
  }
}

/** Turns stack capture off for the next error made; returns the limit to restore. */
export function suspendStackTraces(): number | undefined {
  const limit = Error.stackTraceLimit
  try {
    Error.stackTraceLimit = 0
    return limit
  } catch {
    // Frozen intrinsics: the error keeps its trace, as any other would.
    return undefined
  }
}

export function resumeStackTraces(limit: number): void {
  Error.stackTraceLimit = limit
}

/** The `Idempotency-Key` header is repeated, empty, too long, or not a UUID. Nothing ran. */
export class IdempotencyKeyInvalidError extends IdempotencyError {
  readonly code = 'key_invalid'
  override readonly name = 'IdempotencyKeyInvalidError'
  readonly reason: string
  constructor(reason: string) {
    super(`Invalid idempotency key format: ${reason}`, undefined, false)
    this.reason = reason
  }
}

/** The key already has a record made by a request with another method, path, query or body. */
export class FingerprintMismatchError extends IdempotencyError {
  readonly code = 'fingerprint_mismatch'
  override readonly name = 'FingerprintMismatchError'
  constructor() {
    super('Idempotency key reused with different request parameters', undefined, false)
  }
}

/** The original request still held the key when the wait ran out. */
export class RequestInProgressError extends IdempotencyError {
  readonly code = 'in_progress'
  override readonly name = 'RequestInProgressError'
  constructor() {
    super('Request is still in progress. Please retry later.', undefined, false)
  }
}

/** The waiting request's client went away (its signal aborted) before the original finished. */
export class WaitAbortedError extends IdempotencyError {
  readonly code = 'wait_aborted'
  override readonly name = 'WaitAbortedError'
  constructor() {
    super('Stopped waiting for the original request: the client went away', undefined, false)
  }
}

/**
 * The running request no longer owns its claim: a renewal failed or another request took the
 * key over after the lease lapsed. The operation must not commit.
 */
export class LeaseLostError extends IdempotencyError {
  readonly code = 'lease_lost'
  override readonly name = 'LeaseLostError'
  constructor(options?: ErrorOptions) {
    super('The idempotency lease was lost before the operation finished', options)
  }
}

/** The store could not be read or written. Keyed requests fail closed. */
export class StoreUnavailableError extends IdempotencyError {
  readonly code = 'store_unavailable'
  override readonly name = 'StoreUnavailableError'
  constructor(options?: ErrorOptions) {
    super('The idempotency store is unavailable', options)
  }
}

export type AnyIdempotencyError =
  | IdempotencyKeyInvalidError
  | FingerprintMismatchError
  | RequestInProgressError
  | WaitAbortedError
  | LeaseLostError
  | StoreUnavailableError

export function isIdempotencyError(value: unknown): value is AnyIdempotencyError {
  return typeof value === 'object' && value !== null && brand in value
}
