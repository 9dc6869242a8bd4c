import { createHash } from 'node:crypto'

/**
 * The request's fingerprint: SHA-256 over the method, the path with its query exactly as sent,
 * and the raw body bytes, as 64 hex characters. Headers do not count.
 *
 * The parts are joined with NUL bytes, which neither a method nor a request target can contain,
 * so no two different requests frame to the same input. The body is hashed as received, never
 * re-serialised, so the fingerprint does not depend on a JSON parser's key order.
 */
export function fingerprintRequest(
  method: string,
  pathWithQuery: string,
  body: Uint8Array,
): string {
  // Two updates, not five: each one crosses into OpenSSL and encodes its string anew.
  return createHash('sha256')
    .update(`${method.toUpperCase()}\0${pathWithQuery}\0`)
    .update(body)
    .digest('hex')
}
