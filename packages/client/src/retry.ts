import type { AnyTicksupplyError } from './errors/any-ticksupply-error.js'
import { ApiError } from './errors/api-error.js'
import type { ResolvedRetryOptions } from './options.js'

/**
 * The backoff before retry number `retry` (1 for the first retry): full jitter, a uniform draw
 * between 0 and `min(maxDelayMs, baseDelayMs * 2^(retry - 1))`. Full rather than partial
 * jitter because it spreads a crowd of clients that failed together the most (AWS
 * Architecture Blog, "Exponential Backoff And Jitter").
 */
export function computeBackoffMs(
  retry: number,
  options: ResolvedRetryOptions,
  random: () => number,
): number {
  // 2^(retry - 1) overflows to Infinity long before it matters; min() then picks the cap.
  const ceilingMs = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (retry - 1))
  return Math.floor(random() * ceilingMs)
}

/**
 * How long to wait after `error` before retry number `retry`. A server's `Retry-After` is
 * authoritative (it knows when capacity returns), cut to `maxRetryAfterMs`; without one the
 * backoff applies.
 */
export function computeRetryDelayMs(
  error: AnyTicksupplyError,
  retry: number,
  options: ResolvedRetryOptions,
  random: () => number,
): number {
  if (error instanceof ApiError && error.retryAfterMs !== undefined) {
    return Math.min(error.retryAfterMs, options.maxRetryAfterMs)
  }
  return computeBackoffMs(retry, options, random)
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason as Error)
      return
    }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason as Error)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
