import { ExpectationFailed } from '../expectation.js'
import type { HttpReply } from '../http/http-client.js'
import type { AccountClient, ApiRequest } from './account-client.js'
import { describeReply } from './describe-reply.js'

/** A subscription as `spec/api.md` shows it; only the fields the suite reads. */
export interface Subscription {
  readonly id: string
  readonly datastream_id: number
  readonly status: 'active' | 'paused' | 'deleted'
}

interface Page<T> {
  readonly items: readonly T[]
  readonly next_page_token: string | null
}

/** Bounds every list walk: the suite never pages through an unbounded account. */
const MAX_PAGES = 50

/** The body `JSON.parse` gives, or an expectation failure naming what came instead. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- a typed JSON.parse
export function jsonOf<T>(reply: HttpReply, what: string): T {
  try {
    return JSON.parse(reply.text) as T
  } catch {
    throw new ExpectationFailed(`${what} as JSON`, describeReply(reply))
  }
}

async function listAll<T>(client: AccountClient, path: string, limit: number): Promise<T[]> {
  const items: T[] = []
  let token: string | null = null
  for (let page = 0; page < MAX_PAGES; page++) {
    const query = `?limit=${String(limit)}${token === null ? '' : `&page_token=${encodeURIComponent(token)}`}`
    const reply = await client.send({ method: 'GET', path: `${path}${query}` })
    if (reply.status !== 200) {
      throw new ExpectationFailed(`200 for GET ${path} with ${client.label}`, describeReply(reply))
    }
    const body = jsonOf<Partial<Page<T>>>(reply, `GET ${path}`)
    if (!Array.isArray(body.items)) {
      throw new ExpectationFailed(`a page with "items" from GET ${path}`, describeReply(reply))
    }
    items.push(...(body.items as readonly T[]))
    token = body.next_page_token ?? null
    if (token === null) return items
  }
  throw new ExpectationFailed(
    `at most ${String(MAX_PAGES)} pages from GET ${path}`,
    'more pages than the suite reads',
  )
}

/** Every datastream id of the catalog (`GET /v1/datastreams`). */
export async function listDatastreamIds(client: AccountClient): Promise<number[]> {
  const items = await listAll<{ datastream_id: number }>(client, '/v1/datastreams', 1000)
  return items.map((item) => item.datastream_id).filter((id) => Number.isSafeInteger(id))
}

/** The key's account's listed (active or paused) subscriptions (`GET /v1/subscriptions`). */
export function listSubscriptions(client: AccountClient): Promise<Subscription[]> {
  return listAll<Subscription>(client, '/v1/subscriptions', 100)
}

/** The account's listed subscriptions to one datastream: how the suite counts effects. */
export async function subscriptionsTo(
  client: AccountClient,
  datastreamId: number,
): Promise<Subscription[]> {
  return (await listSubscriptions(client)).filter((sub) => sub.datastream_id === datastreamId)
}

export function createSubscription(
  datastreamId: number,
  extra: Omit<ApiRequest, 'method' | 'path' | 'json'> = {},
): ApiRequest {
  return {
    method: 'POST',
    path: '/v1/subscriptions',
    json: { datastream_id: datastreamId },
    ...extra,
  }
}

/** Creates a subscription without a key; fails unless the answer is 201. */
export async function subscribe(
  client: AccountClient,
  datastreamId: number,
): Promise<Subscription> {
  const reply = await client.send(createSubscription(datastreamId))
  if (reply.status !== 201) {
    throw new ExpectationFailed(
      `201 for an unkeyed POST /v1/subscriptions to datastream ${String(datastreamId)} (setup)`,
      describeReply(reply),
    )
  }
  return jsonOf<Subscription>(reply, 'the created subscription')
}

export async function getSubscription(client: AccountClient, id: string): Promise<Subscription> {
  const reply = await client.send({ method: 'GET', path: `/v1/subscriptions/${id}` })
  if (reply.status !== 200) {
    throw new ExpectationFailed(`200 for GET /v1/subscriptions/${id}`, describeReply(reply))
  }
  return jsonOf<Subscription>(reply, 'the subscription')
}

/** Sends an unkeyed request for setup and fails unless it answers `status`. */
export async function setUp(
  client: AccountClient,
  request: ApiRequest,
  status: number,
): Promise<HttpReply> {
  const reply = await client.send(request)
  if (reply.status !== status) {
    throw new ExpectationFailed(
      `${String(status)} for ${request.method} ${request.path} (setup)`,
      describeReply(reply),
    )
  }
  return reply
}

/** An export schema the suite creates for the PUT and method checks; one column. */
export function createExportSchema(name: string): ApiRequest {
  return {
    method: 'POST',
    path: '/v1/export-schemas',
    json: {
      name,
      stream_category: 'trade',
      columns: [draftColumn('ts')],
    },
  }
}

/** One column of a schema or draft body: the collection timestamp under `name`. */
export function draftColumn(name: string): Record<string, unknown> {
  return { output_column: name, meta: { value: 'collection_timestamp_ns', format: 'ns' } }
}
