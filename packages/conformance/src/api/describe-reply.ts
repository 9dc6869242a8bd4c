import type { HttpReply } from '../http/http-client.js'

/** The headers that matter to the contract, shown with an answer when present. */
const SHOWN_HEADERS = ['idempotent-replayed', 'original-request', 'retry-after', 'location']

const MAX_BODY_CHARS = 240

/**
 * An answer as a report shows it: status, the contract's headers, and the start of the body,
 * e.g. `409 (Retry-After: 1) {"error":{"code":"already_exists",...}}`.
 */
export function describeReply(reply: HttpReply): string {
  const headers = SHOWN_HEADERS.flatMap((name) => {
    const value = reply.header(name)
    return value === undefined ? [] : [`${displayName(name)}: ${value}`]
  })
  const head = headers.length === 0 ? '' : ` (${headers.join(', ')})`
  const body = reply.text.length === 0 ? 'with no body' : truncate(reply.text)
  return `${String(reply.status)}${head} ${body}`
}

export function truncate(text: string, max = MAX_BODY_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max)}... (${String(text.length)} chars)`
}

/** `idempotent-replayed` -> `Idempotent-Replayed`. */
export function displayName(name: string): string {
  return name.replace(
    /(^|-)([a-z])/g,
    (_match, dash: string, letter: string) => dash + letter.toUpperCase(),
  )
}
