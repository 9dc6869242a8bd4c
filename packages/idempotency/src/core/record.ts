/**
 * A response as the store keeps it, and as a replay sends it again.
 *
 * Only the headers a replay needs are kept (`content-type`, `location`): never `set-cookie`,
 * framing headers (`content-length`, `transfer-encoding`) or anything that could carry a secret.
 */
export interface StoredResponse {
  readonly status: number
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
  /** The request id of the request that produced the response: a replay's `Original-Request`. */
  readonly requestId: string
}

/** The headers a stored response keeps; everything else the original sent is dropped. */
export const STORED_HEADER_NAMES = ['content-type', 'location'] as const

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

/** Whether a response is kept for replay: everything below 500 except 408 (the deadline). */
export function isStorableStatus(status: number): boolean {
  return status < 500 && status !== 408
}
