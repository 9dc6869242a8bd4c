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
