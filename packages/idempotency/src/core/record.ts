/**
 * A response as the store keeps it, and as a replay sends it again.
 *
 * Only the headers a replay needs are kept (`content-type`, `content-encoding`, `location`, and
 * those an adapter is told to keep): never `set-cookie`, framing headers (`content-length`,
 * `transfer-encoding`) or anything that could carry a secret (see
 * {@link NEVER_STORED_HEADER_NAMES}).
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
