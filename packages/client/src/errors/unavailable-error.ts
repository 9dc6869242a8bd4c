import { ApiError } from './api-error.js'

/** \`503\` \`unavailable\`: a dependency of the server (database, idempotency store) is down; nothing ran. */
export class UnavailableError extends ApiError {
  override readonly name = 'UnavailableError'
  override readonly code = 'unavailable'
  override readonly retryable = true
}
