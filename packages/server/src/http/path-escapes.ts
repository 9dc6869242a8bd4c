import type { IncomingMessage } from 'node:http'

/**
 * Fastify's `rewriteUrl`: a path whose percent-escapes do not decode (`%zz`, `%FF`, a truncated
 * `%E0%A4%A`) is routed with its percent signs taken literally (`%25`), instead of being
 * refused by the router before any hook. It reaches its route like any other path, and a
 * malformed id there is the operation's own 404: after authentication, the rate limit and the
 * key's format, and stored under the key (spec/idempotency.md, "What is stored"). The
 * fingerprint reads the target as sent (`originalUrl`), never this rewriting. A path that
 * decodes is left as it is: most have no `%` at all, and cost one search.
 */
export function routeUndecodablePathsLiterally(request: IncomingMessage): string {
  const url = request.url ?? '/'
  const query = url.indexOf('?')
  const path = query === -1 ? url : url.slice(0, query)
  if (!path.includes('%')) return url
  try {
    decodeURIComponent(path)
    return url
  } catch {
    return path.replaceAll('%', '%25') + (query === -1 ? '' : url.slice(query))
  }
}
