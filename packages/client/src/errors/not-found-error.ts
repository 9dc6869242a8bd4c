import { ApiError } from './api-error.js'

/** \`404\` \`not_found\`: unknown, deleted where stated, or another account's resource. */
export class NotFoundError extends ApiError {
  override readonly name = 'NotFoundError'
  override readonly code = 'not_found'
  override readonly retryable = false
}
