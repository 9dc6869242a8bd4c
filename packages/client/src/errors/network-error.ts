import { TicksupplyError } from './ticksupply-error.js'

/**
 * The connection failed before a whole response arrived: refused, reset, or closed mid-way.
 * The server may or may not have run the operation; a retry with the same idempotency key
 * finds out without running it twice. `cause` holds the platform's error.
 */
export class NetworkError extends TicksupplyError {
  override readonly name = 'NetworkError'
  override readonly code = 'network_error'
  override readonly retryable = true
}
