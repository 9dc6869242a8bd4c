import { ApiError } from './api-error.js'

/** \`402\` \`payment_required\`: the account's access does not allow a billing-gated action. */
export class PaymentRequiredError extends ApiError {
  override readonly name = 'PaymentRequiredError'
  override readonly code = 'payment_required'
  override readonly retryable = false
}
