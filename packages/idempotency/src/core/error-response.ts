import type { AnyIdempotencyError } from './errors.js'

/** How an engine error is answered over HTTP: the one table every adapter uses. */
export interface IdempotencyErrorResponse {
  readonly status: number
  /** The `error.code` of the envelope. */
  readonly code: 'invalid_argument' | 'already_exists' | 'unavailable'
  readonly message: string
  readonly headers: Readonly<Record<string, string>>
}

const inProgress: IdempotencyErrorResponse = {
  status: 409,
  code: 'already_exists',
  message: 'Request is still in progress. Please retry later.',
  headers: { 'retry-after': '1' },
}

/**
 * Maps an engine error to status, envelope code, message and headers.
 *
 * `lease_lost` answers like `in_progress`: another request now owns the key, so the client's
 * retry with the same key gets that request's outcome. `wait_aborted` has no reader (the
 * client left); it is answered as `in_progress` so that nothing is ever stored for it.
 */
export function toIdempotencyErrorResponse(error: AnyIdempotencyError): IdempotencyErrorResponse {
  switch (error.code) {
    case 'key_invalid':
      return {
        status: 400,
        code: 'invalid_argument',
        message: 'Invalid idempotency key format',
        headers: {},
      }
    case 'fingerprint_mismatch':
      return {
        status: 409,
        code: 'already_exists',
        message: 'Idempotency key reused with different request parameters',
        headers: {},
      }
    case 'in_progress':
    case 'wait_aborted':
    case 'lease_lost':
      return inProgress
    case 'store_unavailable':
      return {
        status: 503,
        code: 'unavailable',
        message: 'The idempotency store is unavailable. Please retry later.',
        headers: { 'retry-after': '1' },
      }
  }
}

/** The JSON error envelope of the contract, as bytes ready to send. */
export function renderErrorEnvelope(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } })
}
