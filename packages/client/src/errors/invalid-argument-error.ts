import { ApiError } from './api-error.js'

/** \`400\` \`invalid_argument\`: the request is malformed (bad JSON, field, query parameter or page token). Fix the request; retrying it unchanged cannot help. */
export class InvalidArgumentError extends ApiError {
  override readonly name = 'InvalidArgumentError'
  override readonly code = 'invalid_argument'
  override readonly retryable = false
}
