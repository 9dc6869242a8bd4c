/** The rate-limit headers of an authenticated answer. */
export interface RateLimitInfo {
  readonly limitMinute: number | undefined
  readonly remainingMinute: number | undefined
  /** Only when the minute bucket is empty: the Unix second when it has a token again. */
  readonly resetMinute: number | undefined
  readonly limitHour: number | undefined
  readonly remainingHour: number | undefined
  /** Only when the hour bucket is empty: the Unix second when it has a token again. */
  readonly resetHour: number | undefined
}

/** What a successful answer said beside its body. */
export interface ResponseMetadata {
  readonly status: number
  /** `X-Request-Id` of the answer (quote it to support). */
  readonly requestId: string | undefined
  /** Whether this is a stored answer replayed for a repeated key (`Idempotent-Replayed`). */
  readonly replayed: boolean
  /** For a replay, the `X-Request-Id` of the request that produced it (`Original-Request`). */
  readonly originalRequestId: string | undefined
  /** How many attempts it took, 1 when the first one succeeded. */
  readonly attempts: number
  /** The key every attempt sent; undefined for GET and PUT. */
  readonly idempotencyKey: string | undefined
  /** The `X-RateLimit-*` headers; undefined when the answer had none. */
  readonly rateLimit: RateLimitInfo | undefined
  /** Every header of the answer. */
  readonly headers: Headers
}

const number = (headers: Headers, name: string): number | undefined => {
  const value = headers.get(name)
  return value === null || !/^\d+$/.test(value.trim()) ? undefined : Number(value)
}

export function readRateLimit(headers: Headers): RateLimitInfo | undefined {
  const info: RateLimitInfo = {
    limitMinute: number(headers, 'x-ratelimit-limit-minute'),
    remainingMinute: number(headers, 'x-ratelimit-remaining-minute'),
    resetMinute: number(headers, 'x-ratelimit-reset-minute'),
    limitHour: number(headers, 'x-ratelimit-limit-hour'),
    remainingHour: number(headers, 'x-ratelimit-remaining-hour'),
    resetHour: number(headers, 'x-ratelimit-reset-hour'),
  }
  return Object.values(info).every((value) => value === undefined) ? undefined : info
}

// Results are the API's own JSON values; their metadata travels beside them, not inside, so
// that a result prints and compares as exactly what the API sent.
const metadataOf = new WeakMap<object, ResponseMetadata>()

/** Remembers `metadata` for `result` (an object or array the client returned). */
export function attachMetadata<T>(result: T, metadata: ResponseMetadata): T {
  if (typeof result === 'object' && result !== null) metadataOf.set(result, metadata)
  return result
}

/**
 * The response metadata of a result that a client method returned: its request id, rate-limit
 * headers, whether it was a replay, the attempts it took. Undefined for any other value.
 *
 * @example
 * const subscription = await client.subscriptions.create({ datastream_id: 42 })
 * console.log(responseOf(subscription)?.requestId)
 */
export function responseOf(result: unknown): ResponseMetadata | undefined {
  return typeof result === 'object' && result !== null ? metadataOf.get(result) : undefined
}
