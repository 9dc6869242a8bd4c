import { ApiError } from './api-error.js'

/** The largest int64: a `datastream_id` is a positive int64. */
const INT64_MAX = 9_223_372_036_854_775_807n

/**
 * A `datastream_id` as a JSON body holds it, parsed by `parseJsonKeepingInt64`: a safe integer
 * as a number, a larger one as a bigint (a plain `JSON.parse` would round it to another id, and
 * 2^63 - 1 to 2^63). A positive int64 comes back as a bigint; anything else (a fraction, zero,
 * a string, a number past int64, `1e30`) is `undefined`.
 */
export function datastreamIdOf(value: unknown): bigint | undefined {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 1 ? BigInt(value) : undefined
  }
  if (typeof value === 'bigint') return value >= 1n && value <= INT64_MAX ? value : undefined
  return undefined
}

/** The `datastream_id` query parameter: a positive int64 as digits, else the documented 400. */
export function parseDatastreamIdParam(value: string | undefined): bigint {
  const id =
    value !== undefined && /^\d{1,19}$/.test(value) ? datastreamIdOf(BigInt(value)) : undefined
  if (id === undefined) {
    throw new ApiError('invalid_argument', 'Invalid datastream_id: must be a positive integer')
  }
  return id
}

/**
 * The id as the catalog stores it, or `undefined` for one past 2^53, which no datastream has
 * (the catalog's ids are small): such an id is unknown, a 404 that names it digit for digit.
 */
export function catalogIdOf(id: bigint): number | undefined {
  return id <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(id) : undefined
}
