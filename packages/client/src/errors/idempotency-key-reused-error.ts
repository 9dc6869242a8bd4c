import { ApiError } from './api-error.js'

/** \`409\` \`already_exists\` with message \`Idempotency key reused with different request parameters\`: the key belongs to another request. Never retried: the same key would get the same answer, and a new key could run the operation twice. */
export class IdempotencyKeyReusedError extends ApiError {
  override readonly name = 'IdempotencyKeyReusedError'
  override readonly code = 'idempotency_key_reused'
  override readonly retryable = false
}
