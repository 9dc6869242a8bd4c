/**
 * Whether the client retries an answer with this status: `408`, `429` and every `5xx`. The
 * status decides, never the envelope's code: the status is what the server's idempotency layer
 * acted on (it stores every answer below 500 except 408 and replays it to a retry), so a `400`
 * that says `unavailable` would replay the same 400 forever, and a `503` that says
 * `invalid_argument` was not stored and may succeed on a retry. The "still in progress" `409`
 * is the one retried answer below 500; it is recognised by its status, code and message.
 */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500
}
