/**
 * Marks errors of this package. A registered symbol, not `instanceof`, so that the guard still
 * works when two copies of the package are installed (ky's `isKyError` has the same reason).
 */
export const TICKSUPPLY_ERROR = Symbol.for('@ticksupply/client/error')

/** What every error of the client carries. */
export interface TicksupplyErrorInit {
  readonly message: string
  readonly status?: number | undefined
  readonly requestId?: string | undefined
  readonly cause?: unknown
}

/**
 * The base of every error the client throws for a request. Switch on `code` after narrowing
 * with {@link isTicksupplyError}; `retryable` tells whether the client would retry it.
 */
export abstract class TicksupplyError extends Error {
  abstract readonly code: string
  abstract readonly retryable: boolean
  /** The HTTP status, when a response arrived. */
  readonly status: number | undefined
  /** The response's `X-Request-Id`, to quote when asking for support. */
  readonly requestId: string | undefined
  readonly [TICKSUPPLY_ERROR] = true

  constructor(init: TicksupplyErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause })
    this.status = init.status
    this.requestId = init.requestId
  }
}
