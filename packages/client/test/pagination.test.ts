/**
 * Walking a paged list against servers that misbehave: a token that comes back after other
 * pages, a page without `next_page_token`, answers that are not pages. Each must end the walk
 * with an UnexpectedResponseError after a counted number of requests, never loop.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { UnexpectedResponseError, createClient } from '../src/index.js'
import type { TestHttpServer } from './support/test-http-server.js'
import { sendJson, startTestHttpServer } from './support/test-http-server.js'

let server: TestHttpServer | undefined
afterEach(async () => {
  await server?.close()
  server = undefined
})

/** A server whose page for a token (undefined for the first) is `pageFor(token)`. */
async function clientOfPages(pageFor: (token: string | undefined) => unknown) {
  server = await startTestHttpServer((request, response) => {
    const token = new URL(request.url, 'http://x').searchParams.get('page_token') ?? undefined
    sendJson(response, 200, pageFor(token), { 'x-request-id': 'req_00000000000000ab' })
  })
  const client = createClient({ apiKey: 'pages-key-0123456789', baseUrl: server.url })
  return { client, requests: server.requests }
}

const page = (token: string | undefined, next: unknown) => ({
  items: [{ id: `sub_${token ?? 'first'}` }],
  total: 99,
  limit: 1,
  next_page_token: next,
})

/** Reads the whole list, stopping the test (not the client) after 20 items. */
async function walk(client: ReturnType<typeof createClient>) {
  const ids: string[] = []
  try {
    for await (const subscription of client.subscriptions.iterate()) {
      ids.push(subscription.id)
      if (ids.length >= 20) return { ids, error: new Error('still looping after 20 items') }
    }
    return { ids, error: undefined }
  } catch (error) {
    return { ids, error }
  }
}

describe('a paged list', () => {
  it('stops with UnexpectedResponseError when a token comes back after another page (A, B, A)', async () => {
    const { client, requests } = await clientOfPages((token) =>
      page(token, token === 'A' ? 'B' : 'A'),
    )

    const { ids, error } = await walk(client)

    expect(error).toBeInstanceOf(UnexpectedResponseError)
    expect(error).toMatchObject({
      code: 'unexpected_response',
      status: 200,
      requestId: 'req_00000000000000ab',
      retryable: false,
    })
    expect((error as Error).message).toContain('"A"')
    expect(ids).toEqual(['sub_first', 'sub_A', 'sub_B'])
    expect(requests.map((request) => request.url)).toEqual([
      '/v1/subscriptions',
      '/v1/subscriptions?page_token=A',
      '/v1/subscriptions?page_token=B',
    ])
  })

  it('stops with UnexpectedResponseError when the same token comes twice in a row', async () => {
    const { client, requests } = await clientOfPages((token) => page(token, 'A'))

    const { error } = await walk(client)

    expect(error).toBeInstanceOf(UnexpectedResponseError)
    expect(requests).toHaveLength(2)
  })

  it.each([
    ['without next_page_token', undefined],
    ['with an empty next_page_token', ''],
    ['with a numeric next_page_token', 2],
  ])(
    'stops with UnexpectedResponseError at a page %s, instead of going back to page 1',
    async (_name, next) => {
      const { client, requests } = await clientOfPages((token) =>
        token === undefined ? page(token, 'A') : { ...page(token, null), next_page_token: next },
      )

      const { ids, error } = await walk(client)

      expect(error).toBeInstanceOf(UnexpectedResponseError)
      expect(ids).toEqual(['sub_first'])
      expect(requests).toHaveLength(2)
    },
  )

  it.each([
    ['an array', []],
    ['an object without items', { total: 0, limit: 50, next_page_token: null }],
    ['null', null],
  ])('stops with UnexpectedResponseError when a list answers %s', async (_name, body) => {
    const { client, requests } = await clientOfPages(() => body)

    const { error } = await walk(client)

    expect(error).toBeInstanceOf(UnexpectedResponseError)
    expect(error).toMatchObject({ status: 200, retryable: false })
    expect(requests).toHaveLength(1)
  })
})
