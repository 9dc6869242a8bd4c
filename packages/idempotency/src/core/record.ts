/**
 * A response as the store keeps it, and as a replay sends it again.
 *
 * Only the headers a replay needs are kept (`content-type`, `content-encoding`, `location`, and
 * those an adapter is told to keep): never `set-cookie`, framing headers (`content-length`,
 * `transfer-encoding`) or anything that could carry a secret (see
 * {@link NEVER_STORED_HEADER_NAMES}; the engine leaves those out of any response it is handed).
 */
export interface StoredResponse {
  readonly status: number
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
  /** The request id of the request that produced the response: a replay's `Original-Request`. */
  readonly requestId: string
}

/**
 * The headers a stored response always keeps; an adapter's `storedHeaders` option adds to them.
 * Everything else the original sent is dropped. `content-encoding` labels the body's bytes (a
 * handler that sends a body it compressed itself): without it a replay of those bytes is
 * unreadable. An encoding added on the way out by the app's own compression is not the
 * handler's: the adapters keep the body as the handler answered it, and leave the label out.
 */
export const STORED_HEADER_NAMES = ['content-type', 'content-encoding', 'location'] as const

/**
 * Headers no stored response may keep, whatever an adapter is told: credentials and cookies
 * (one user's session replayed to a retry), framing and connection headers (the replay frames
 * its own body), and the headers each answer has of its own (`date`, `x-request-id`, the replay
 * markers).
 */
export const NEVER_STORED_HEADER_NAMES: ReadonlySet<string> = new Set([
  'set-cookie',
  'authorization',
  'proxy-authorization',
  'www-authenticate',
  'proxy-authenticate',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'trailer',
  'te',
  'date',
  'x-request-id',
  'idempotent-replayed',
  'original-request',
])

/**
 * A record's life:
 *
 * ```
 *   (none) --claim--> in_progress --complete--> completed --(expiresAt)--> (none)
 *                        |   ^  
 *                release |   | takeover, once leaseExpiresAt has passed (same expiresAt)
 *                        v   |
 *                      (none)
 * ```
 *
 * `expiresAt` is fixed by the first claim: neither a takeover nor the completion moves it.
 */
export type RecordState = 'in_progress' | 'completed'

/**
 * Whether a response is kept for replay: every final answer below 500 except 408 (the
 * deadline). A status outside 200-599 is no answer at all (a fetch `Response.error()` has 0).
 */
export function isStorableStatus(status: number): boolean {
  return status >= 200 && status < 500 && status !== 408
}

/** Whether `status` is one an HTTP answer can carry, and so one a record can replay. */
export function isFinalStatus(status: number): boolean {
  return Number.isInteger(status) && status >= 200 && status <= 599
}

/**
 * The response as a record keeps it, or a `TypeError` naming what is wrong with it, before
 * anything is written: a record every retry must read back (a `null` for headers, a header
 * without a value) answered 503 for the life of its key. Header names are lower-cased; headers
 * without a value are left out, as `setHeader` leaves nothing for them; those no record may
 * keep are left out too, whoever hands the response over.
 */
export function storableResponse(response: StoredResponse): StoredResponse {
  if (typeof response !== 'object' || (response as unknown) === null) {
    throw new TypeError('the operation answered no response object')
  }
  const { status, headers, body, requestId } = response
  if (!isFinalStatus(status)) {
    throw new TypeError(
      `a stored response needs an HTTP status from 200 to 599, got ${String(status)}`,
    )
  }
  if (!(body instanceof Uint8Array)) throw new TypeError('a stored response body must be bytes')
  if (typeof requestId !== 'string') throw new TypeError('a stored response needs a request id')
  if ((headers as unknown) === undefined || (headers as unknown) === null) {
    return { status, headers: {}, body, requestId }
  }
  if (typeof headers !== 'object') throw new TypeError('stored response headers must be an object')
  let asGiven = true
  for (const name in headers) {
    const value: unknown = headers[name]
    if (value === undefined || value === null || NEVER_STORED_HEADER_NAMES.has(name)) {
      asGiven = false
    } else if (typeof value !== 'string') {
      throw new TypeError(`stored response header ${name} must be a string`)
    } else if (name !== name.toLowerCase()) {
      asGiven = false
    }
  }
  // The common case costs one look at each header and no copy.
  if (asGiven) return response
  const kept: Record<string, string> = {}
  for (const name in headers) {
    const value: unknown = headers[name]
    const lower = name.toLowerCase()
    if (typeof value === 'string' && !NEVER_STORED_HEADER_NAMES.has(lower)) kept[lower] = value
  }
  return { status, headers: kept, body, requestId }
}
