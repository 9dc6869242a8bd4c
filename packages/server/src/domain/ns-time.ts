import { ApiError } from './api-error.js'

/** The largest int64: the upper bound of an export time in nanoseconds. */
const INT64_MAX = 9_223_372_036_854_775_807n
const NS_PER_MS = 1_000_000n

// RFC 3339's profile of ISO 8601, `t` and `z` in either case as it allows, and ISO 8601's time
// without seconds (`18:37Z`).
const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?([Zz]|[+-]\d{2}:\d{2})$/

/**
 * An export time in nanoseconds since the epoch from any of its input forms: a JSON integer
 * (a `bigint` when the body parser kept it exact), a string of digits, or ISO 8601 with up to
 * nine fractional digits and `Z` or an offset.
 */
export function parseNsTime(field: string, value: unknown): bigint {
  const invalid = () =>
    new ApiError(
      'invalid_argument',
      `${field} must be nanoseconds since the epoch (an integer or a string of digits) or ISO 8601 with up to 9 fractional digits`,
    )
  let ns: bigint
  if (typeof value === 'bigint') ns = value
  else if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw invalid()
    ns = BigInt(value)
  } else if (typeof value === 'string') {
    if (/^\d{1,19}$/.test(value)) ns = BigInt(value)
    else ns = parseIso8601(value) ?? throwError(invalid())
  } else throw invalid()
  if (ns < 0n || ns > INT64_MAX) throw invalid()
  return ns
}

function throwError(error: Error): never {
  throw error
}

function parseIso8601(text: string): bigint | undefined {
  const match = ISO_8601.exec(text)
  if (match === null) return undefined
  const [, year, month, day, hour, minute, second = '00', fraction = '', zone = 'Z'] = match
  const fields = [year, month, day, hour, minute, second].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ]
  const ms = Date.UTC(fields[0], fields[1] - 1, fields[2], fields[3], fields[4], fields[5])
  // Date.UTC rolls 2024-02-30 over into March: a date that does not round-trip does not exist.
  const back = new Date(ms)
  if (
    back.getUTCFullYear() !== fields[0] ||
    back.getUTCMonth() !== fields[1] - 1 ||
    back.getUTCDate() !== fields[2] ||
    back.getUTCHours() !== fields[3] ||
    back.getUTCMinutes() !== fields[4] ||
    back.getUTCSeconds() !== fields[5]
  )
    return undefined
  let offsetMs = 0
  if (zone !== 'Z' && zone !== 'z') {
    const sign = zone.startsWith('-') ? -1 : 1
    const [hours, minutes] = zone.slice(1).split(':').map(Number) as [number, number]
    if (hours > 23 || minutes > 59) return undefined
    offsetMs = sign * (hours * 60 + minutes) * 60_000
  }
  return BigInt(ms - offsetMs) * NS_PER_MS + BigInt(fraction.padEnd(9, '0'))
}

/** Nanoseconds for epoch milliseconds (span bounds are stored in milliseconds). */
export function msToNs(ms: number): bigint {
  return BigInt(ms) * NS_PER_MS
}

/** `2024-01-15T10:00:00.123456789Z`: whole seconds keep no fraction, others keep what they have. */
export function nsToIso8601(ns: bigint): string {
  const seconds = ns / 1_000_000_000n
  const fraction = ns % 1_000_000_000n
  const base = new Date(Number(seconds) * 1000).toISOString().slice(0, 19)
  if (fraction === 0n) return `${base}Z`
  return `${base}.${fraction.toString().padStart(9, '0').replace(/0+$/, '')}Z`
}
