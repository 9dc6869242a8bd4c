import type { Page } from './types.js'

/**
 * Walks a paged list item by item, reading one page at a time as the loop asks for more.
 * Breaking out of a `for await` stops it: no page is read ahead.
 */
export async function* paginate<T>(
  readPage: (pageToken: string | undefined) => Promise<Page<T>>,
): AsyncGenerator<T, void, undefined> {
  let pageToken: string | undefined
  for (;;) {
    const page = await readPage(pageToken)
    yield* page.items
    if (page.next_page_token === null) return
    // A server bug that hands back the token it was given would loop forever.
    if (page.next_page_token === pageToken) {
      throw new Error(`The server returned the same page token twice: ${pageToken}`)
    }
    pageToken = page.next_page_token
  }
}
