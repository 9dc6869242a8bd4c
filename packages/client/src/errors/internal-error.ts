import { ApiError } from './api-error.js'

/** \`500\` \`internal\`: a server bug. Not stored under the idempotency key, so a retry runs the operation again. */
export class InternalError extends ApiError {
  override readonly name = 'InternalError'
  override readonly code = 'internal'
  override readonly retryable = true
}
