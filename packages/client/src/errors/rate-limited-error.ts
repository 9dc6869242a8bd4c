import { ApiError } from './api-error.js'

/** \`429\` \`rate_limited\`: a rate-limit window is exhausted; \`retryAfterMs\` says when capacity returns. */
export class RateLimitedError extends ApiError {
  override readonly name = 'RateLimitedError'
  override readonly code = 'rate_limited'
  override readonly retryable = true
}
