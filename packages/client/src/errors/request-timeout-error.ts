import { ApiError } from './api-error.js'

/** \`408\` \`request_timeout\`: the server's 10 s deadline passed and the operation's writes rolled back, so a retry with the same key runs it again safely. */
export class RequestTimeoutError extends ApiError {
  override readonly name = 'RequestTimeoutError'
  override readonly code = 'request_timeout'
  override readonly retryable = true
}
