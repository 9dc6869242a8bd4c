import { ApiError } from './api-error.js'

/** \`403\` \`permission_denied\`: allowed to see but not to do, e.g. \`Subscription has been deleted\`. */
export class PermissionDeniedError extends ApiError {
  override readonly name = 'PermissionDeniedError'
  override readonly code = 'permission_denied'
  override readonly retryable = false
}
