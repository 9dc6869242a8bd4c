import { ApiError } from './api-error.js'

/** \`409\` \`already_exists\` with message \`Request is still in progress. Please retry later.\`: the first request with this key is still running; a retry with the same key gets its response. */
export class RequestInProgressError extends ApiError {
  override readonly name = 'RequestInProgressError'
  override readonly code = 'request_in_progress'
  override readonly retryable = true
}
