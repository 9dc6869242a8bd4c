import type { TicksupplyErrorInit } from './ticksupply-error.js'
import { TicksupplyError } from './ticksupply-error.js'

/** The codes of the API's error envelope. */
export type ApiErrorCode =
  | 'invalid_argument'
  | 'unauthenticated'
  | 'payment_required'
  | 'permission_denied'
  | 'not_found'
  | 'request_timeout'
  | 'already_exists'
  | 'rate_limited'
  | 'internal'
  | 'unavailable'

export interface ApiErrorInit extends TicksupplyErrorInit {
  readonly status: number
  /** The envelope's `code` as sent, kept verbatim even where the class refines it. */
  readonly apiCode?: string | undefined
  readonly details?: Readonly<Record<string, unknown>> | undefined
  /** The response's `Retry-After`, already converted to milliseconds from now. */
  readonly retryAfterMs?: number | undefined
}

/** An error response of the API (its envelope `{"error":{"code","message","details"?}}`). */
export abstract class ApiError extends TicksupplyError {
  declare readonly status: number
  /** The envelope's `code` exactly as the server sent it. */
  readonly apiCode: string | undefined
  /** The envelope's `details`, e.g. `subscription_id` of a duplicate subscription. */
  readonly details: Readonly<Record<string, unknown>> | undefined
  /** How long the server asked the client to wait (`Retry-After`), in milliseconds. */
  readonly retryAfterMs: number | undefined

  constructor(init: ApiErrorInit) {
    super(init)
    this.apiCode = init.apiCode
    this.details = init.details
    this.retryAfterMs = init.retryAfterMs
  }
}
