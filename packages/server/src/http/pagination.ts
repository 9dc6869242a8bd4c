import { ApiError } from '../domain/api-error.js'
import type { Page } from '../domain/page.js'

export interface PageQuery<K> {
  readonly limit: number
  readonly after: K | undefined
}

/**
 * Reads `limit` and `page_token`. The token is opaque to clients (base64url of the last sort
 * key); one that does not decode, or a `limit` out of 1..max, is a 400.
 */
export function parsePageQuery<K extends string | number>(
  query: { limit?: string | undefined; page_token?: string | undefined },
  bounds: { defaultLimit: number; maxLimit: number },
  keyType: K extends number ? 'number' : 'string',
): PageQuery<K> {
  let limit = bounds.defaultLimit
  if (query.limit !== undefined) {
    if (
      !/^\d{1,7}$/.test(query.limit) ||
      Number(query.limit) < 1 ||
      Number(query.limit) > bounds.maxLimit
    ) {
      throw new ApiError(
        'invalid_argument',
        `limit must be an integer from 1 to ${String(bounds.maxLimit)}`,
      )
    }
    limit = Number(query.limit)
  }
  if (query.page_token === undefined || query.page_token === '') return { limit, after: undefined }
  return { limit, after: decodePageToken(query.page_token, keyType) as K }
}

function decodePageToken(token: string, keyType: 'number' | 'string'): string | number {
  const invalid = new ApiError('invalid_argument', 'Invalid page_token')
  if (!/^[A-Za-z0-9_-]{1,512}$/.test(token)) throw invalid
  let decoded: unknown
  try {
    decoded = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'))
  } catch {
    throw invalid
  }
  const after = (decoded as { a?: unknown } | null)?.a
  if (keyType === 'number' && typeof after === 'number' && Number.isSafeInteger(after)) return after
  if (keyType === 'string' && typeof after === 'string') return after
  throw invalid
}

export function encodePageToken(after: string | number): string {
  return Buffer.from(JSON.stringify({ a: after })).toString('base64url')
}

/** The wire shape of a paged list. */
export function renderPage<T>(page: Page<T>, limit: number) {
  return {
    items: page.items,
    total: page.total,
    limit,
    next_page_token: page.nextAfter === null ? null : encodePageToken(page.nextAfter),
  }
}
