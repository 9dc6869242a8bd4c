import type { ApiErrorInit } from './api-error.js'
import { ApiError } from './api-error.js'
import { isRetryableStatus } from './retryable-status.js'

/**
 * A response that is not what the API documents: an error status without the envelope (a
 * proxy's HTML 502, say), an unknown error code, a code whose status disagrees with it on
 * retrying (a `503` saying `invalid_argument`), or a success whose body is not JSON or not the
 * documented shape. Retried when its status is one the client retries anyway (408, 429, 5xx).
 */
export class UnexpectedResponseError extends ApiError {
  override readonly name = 'UnexpectedResponseError'
  override readonly code = 'unexpected_response'
  override readonly retryable: boolean

  constructor(init: ApiErrorInit) {
    super(init)
    this.retryable = isRetryableStatus(init.status)
  }
}
