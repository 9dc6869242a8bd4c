import { UnexpectedResponseError } from './errors/unexpected-response-error.js'
import { responseOf } from './response-metadata.js'
import type { Page } from './types.js'

/**
 * Walks a paged list item by item, reading one page at a time as the loop asks for more.
 * Breaking out of a `for await` stops it: no page is read ahead.
 *
 * @throws UnexpectedResponseError when a page is not a page (`items` an array,
 *   `next_page_token` a non-empty string or null), or hands out a token the walk already
 *   followed: either would otherwise loop forever (a missing token restarts at page 1, a
 *   cycle A → B → A never ends).
 */
export async function* paginate<T>(
  readPage: (pageToken: string | undefined) => Promise<Page<T>>,
): AsyncGenerator<T, void, undefined> {
  // Every token of this walk, not only the last one: tokens are opaque, so a cycle of any
  // length is only visible as a token coming back.
  const seen = new Set<string>()
  let pageToken: string | undefined
  for (;;) {
    const page: unknown = await readPage(pageToken)
    const next = checkPage(page)
    yield* (page as Page<T>).items
    if (next === null) return
    if (seen.has(next)) {
      throw unexpected(page, `the server returned the page token "${next}" a second time`)
    }
    seen.add(next)
    pageToken = next
  }
}

/** The page's `next_page_token`, once the page has been checked to be one. */
function checkPage(page: unknown): string | null {
  if (typeof page !== 'object' || page === null || Array.isArray(page)) {
    throw unexpected(page, 'a list answered something other than a page')
  }
  const { items, next_page_token: next } = page as Record<string, unknown>
  if (!Array.isArray(items)) throw unexpected(page, 'a page without an `items` array')
  // A page without a token (or with an empty one) would send the walk back to page 1.
  if (next !== null && (typeof next !== 'string' || next === '')) {
    throw unexpected(page, 'a page whose `next_page_token` is neither a token nor null')
  }
  return next
}

function unexpected(page: unknown, what: string): UnexpectedResponseError {
  const metadata = responseOf(page)
  return new UnexpectedResponseError({
    // A page arrived as a success; without its metadata (a bare value), 200 is what it was.
    status: metadata?.status ?? 200,
    requestId: metadata?.requestId,
    message: `Unexpected answer: ${what}`,
  })
}
