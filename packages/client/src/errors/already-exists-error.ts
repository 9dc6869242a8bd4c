import { ApiError } from './api-error.js'

/** \`409\` \`already_exists\` for a duplicate resource, e.g. a second subscription to one datastream (\`details.subscription_id\` names the first). */
export class AlreadyExistsError extends ApiError {
  override readonly name = 'AlreadyExistsError'
  override readonly code = 'already_exists'
  override readonly retryable = false
}
