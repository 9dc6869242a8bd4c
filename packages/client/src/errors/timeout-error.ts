import { TicksupplyError } from './ticksupply-error.js'

/**
 * No whole response within the client's per-attempt timeout (`timeoutMs`). Like a
 * {@link NetworkError}, the operation may have run; retried with the same key.
 */
export class TimeoutError extends TicksupplyError {
  override readonly name = 'TimeoutError'
  override readonly code = 'timeout'
  override readonly retryable = true
  /** The timeout that passed. */
  readonly timeoutMs: number

  constructor(timeoutMs: number) {
    super({ message: `No response within ${String(timeoutMs)} ms` })
    this.timeoutMs = timeoutMs
  }
}
