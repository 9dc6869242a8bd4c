import { createHash, hash } from 'node:crypto'
import type { Hash } from 'node:crypto'

/**
 * The request's fingerprint: SHA-256 over the method, the path with its query exactly as sent,
 * and the raw body bytes, as 64 hex characters. Headers do not count.
 *
 * The parts are joined with NUL bytes, which neither a method nor a request target can contain,
 * so no two different requests frame to the same input. The body is hashed as received, never
 * re-serialised, so the fingerprint does not depend on a JSON parser's key order. A target in
 * absolute form counts as its path and query ({@link originFormOf}).
 */
export function fingerprintRequest(
  method: string,
  pathWithQuery: string,
  body: Uint8Array,
): string {
  // One call into OpenSSL over one buffer: for the small bodies of most requests a Hash object
  // and its three calls cost more than copying the body behind the framing.
  return hash('sha256', Buffer.concat([framing(method, pathWithQuery), body]), 'hex')
}

/**
 * The same fingerprint, fed with the body as it streams by ({@link BodyFingerprint.add}), for
 * adapters that see the body in chunks: small bodies are kept and hashed in one call at the
 * end, larger ones are hashed as they come, so a large upload is never held whole for its
 * fingerprint.
 */
export class BodyFingerprint {
  readonly method: string
  readonly pathWithQuery: string
  #chunks: Uint8Array[] = []
  #bytes = 0
  #hash: Hash | undefined
  #digest: string | undefined

  constructor(method: string, pathWithQuery: string) {
    this.method = method
    this.pathWithQuery = pathWithQuery
  }

  /** The next bytes of the body, in order. */
  add(chunk: Uint8Array): void {
    // Bytes after the digest change nothing: the adapter refuses a body not read whole by then.
    if (this.#digest !== undefined) return
    if (this.#hash !== undefined) {
      this.#hash.update(chunk)
      return
    }
    this.#chunks.push(chunk)
    this.#bytes += chunk.byteLength
    if (this.#bytes <= KEPT_BODY_BYTES) return
    this.#hash = createHash('sha256').update(framing(this.method, this.pathWithQuery))
    for (const kept of this.#chunks) this.#hash.update(kept)
    this.#chunks = []
  }

  /** The fingerprint of the method, the path and the bytes added so far; the body ends here. */
  digest(): string {
    this.#digest ??=
      this.#hash?.digest('hex') ??
      fingerprintRequest(
        this.method,
        this.pathWithQuery,
        this.#chunks.length === 1 ? (this.#chunks[0] as Uint8Array) : Buffer.concat(this.#chunks),
      )
    this.#chunks = []
    return this.#digest
  }
}

/** Bodies up to this size are kept and hashed at the end, larger ones as they stream. */
const KEPT_BODY_BYTES = 65_536

function framing(method: string, pathWithQuery: string): Buffer {
  return Buffer.from(`${method.toUpperCase()}\0${originFormOf(pathWithQuery)}\0`)
}

const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/

/**
 * A request target's path and query. HTTP servers must accept a target in absolute form
 * (`POST http://api.example.com/v1/subscriptions`, RFC 9112 section 3.2.2; clients behind a
 * forward proxy send it), and frameworks route it by its path, but hand it on as sent: its
 * scheme and authority are the `Host`, a header, which does not count. So a request sent once
 * through a proxy and retried directly, or under another host name, is the same request.
 */
export function originFormOf(target: string): string {
  if (target.charCodeAt(0) === SLASH) return target
  const authority = ABSOLUTE_FORM.exec(target)
  if (authority === null) return target
  const rest = target.slice(authority[0].length)
  return rest.charCodeAt(0) === SLASH ? rest : `/${rest}`
}

const SLASH = 0x2f
