import { describe, expect, it } from 'vitest'
import {
  RateLimitedError,
  computeBackoffMs,
  computeRetryDelayMs,
  parseRetryAfter,
} from '../src/index.js'

const NOW_MS = Date.parse('2026-11-29T12:00:00Z')
const RETRY = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1_000, maxRetryAfterMs: 30_000 }

describe('parseRetryAfter', () => {
  it.each([
    ['0', 0],
    ['7', 7_000],
    [' 120 ', 120_000],
    ['Sun, 29 Nov 2026 12:00:30 GMT', 30_000],
    ['Sunday, 29-Nov-26 12:01:00 GMT', 60_000],
    ['Sun Nov 29 12:00:05 2026', 5_000],
    ['Sun, 29 Nov 2026 11:00:00 GMT', 0],
  ])('reads %j as %i ms', (header, expected) => {
    expect(parseRetryAfter(header, NOW_MS)).toBe(expected)
  })

  it.each(['America/New_York', 'Asia/Tokyo'])(
    'reads the asctime form as GMT, as every HTTP-date is, in %s too',
    (zone) => {
      const before = process.env['TZ']
      // Node reads TZ again whenever it is set.
      process.env['TZ'] = zone
      try {
        expect(new Date(NOW_MS).getTimezoneOffset()).not.toBe(0)
        expect(parseRetryAfter('Sun Nov 29 12:00:05 2026', NOW_MS)).toBe(5_000)
        expect(parseRetryAfter('Sun Nov  1 12:00:05 2026', NOW_MS)).toBe(0)
      } finally {
        if (before === undefined) delete process.env['TZ']
        else process.env['TZ'] = before
      }
    },
  )

  it.each([null, undefined, '', '-1', '1.5', 'soon', '2026-11-29'])('ignores %j', (header) => {
    expect(parseRetryAfter(header, NOW_MS)).toBeUndefined()
  })
})

describe('computeBackoffMs', () => {
  it('doubles its ceiling per retry up to maxDelayMs', () => {
    const top = () => 0.999_999
    expect([1, 2, 3, 4, 5, 6, 60].map((retry) => computeBackoffMs(retry, RETRY, top))).toEqual([
      99, 199, 399, 799, 999, 999, 999,
    ])
  })

  it('draws the whole range from 0 (full jitter)', () => {
    expect(computeBackoffMs(3, RETRY, () => 0)).toBe(0)
    expect(computeBackoffMs(3, RETRY, () => 0.5)).toBe(200)
  })
})

describe('computeRetryDelayMs', () => {
  it('takes Retry-After over the backoff, cut to maxRetryAfterMs', () => {
    const error = (retryAfterMs: number | undefined) =>
      new RateLimitedError({ status: 429, message: 'slow down', retryAfterMs })

    expect(computeRetryDelayMs(error(2_000), 1, RETRY, () => 0)).toBe(2_000)
    expect(computeRetryDelayMs(error(3_600_000), 1, RETRY, () => 0)).toBe(30_000)
    expect(computeRetryDelayMs(error(undefined), 2, RETRY, () => 0.5)).toBe(100)
  })
})
