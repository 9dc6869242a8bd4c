import { ApiError } from './api-error.js'
import type { IdPrefix } from './ids.js'
import { isId } from './ids.js'

/** One page of a keyset-paged list. */
export interface Page<T> {
  readonly items: T[]
  /** How many items the whole list has. */
  readonly total: number
  /** The sort key of the last item when another page follows; null on the last page. */
  readonly nextAfter: string | number | null
}

/**
 * Builds a page from `limit + 1` rows: the extra row only tells that another page follows.
 * Keyset cursors (the last sort key), not offsets, so that inserts between two page reads
 * neither repeat nor skip an item.
 */
export function page<T>(
  rows: T[],
  limit: number,
  total: number,
  sortKey: (row: T) => string | number,
): Page<T> {
  const more = rows.length > limit
  const items = more ? rows.slice(0, limit) : rows
  const last = items.at(-1)
  return { items, total, nextAfter: more && last !== undefined ? sortKey(last) : null }
}

/** The cursor of a newest-first list: the last item's `created_at` (epoch ms) and id. */
export interface NewestFirstCursor {
  readonly createdAt: number
  readonly id: string
}

/** The sort key a newest-first list hands to {@link page}. */
export function newestFirstKey(row: { created_at: number | string; id: string }): string {
  return `${String(row.created_at)}:${row.id}`
}

/**
 * Reads a newest-first cursor back; anything else (a token of another list, a forged one) is
 * the 400 of a bad page token.
 */
export function parseNewestFirstCursor(after: string, idPrefix: IdPrefix): NewestFirstCursor {
  const match = /^(\d{1,15}):([a-z]+_[0-9a-f]{32})$/.exec(after)
  if (match === null || !isId(idPrefix, match[2] ?? '')) {
    throw new ApiError('invalid_argument', 'Invalid page_token')
  }
  return { createdAt: Number(match[1]), id: match[2] ?? '' }
}
