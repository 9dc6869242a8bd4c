import { ApiError } from './api-error.js'

/** \`401\` \`unauthenticated\`: the API key is missing, unknown or revoked. */
export class UnauthenticatedError extends ApiError {
  override readonly name = 'UnauthenticatedError'
  override readonly code = 'unauthenticated'
  override readonly retryable = false
}
