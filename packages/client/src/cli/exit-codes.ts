import type { TicksupplyErrorCode } from '../errors/any-ticksupply-error.js'

/**
 * The exit status of the command line for each outcome, one per error class so that scripts
 * can branch on `$?`. 1 is left to crashes (a bug), 2 to usage errors, as shells expect.
 */
export const EXIT_CODES = {
  ok: 0,
  crash: 1,
  usage: 2,
  invalid_argument: 3,
  unauthenticated: 4,
  payment_required: 5,
  permission_denied: 6,
  not_found: 7,
  already_exists: 8,
  idempotency_key_reused: 9,
  request_in_progress: 10,
  rate_limited: 11,
  request_timeout: 12,
  internal: 13,
  unavailable: 14,
  unexpected_response: 15,
  network_error: 16,
  timeout: 17,
  /** `exports create --wait` saw the job end as failed or canceled. */
  export_failed: 18,
  /** A local file could not be read (`--file`) or written (`--dir`, `--download`). */
  file_error: 19,
  /** Interrupted with Ctrl-C (128 + SIGINT), as shells report it. */
  interrupted: 130,
} as const satisfies Record<TicksupplyErrorCode, number> & Record<string, number>

export type ExitOutcome = keyof typeof EXIT_CODES
