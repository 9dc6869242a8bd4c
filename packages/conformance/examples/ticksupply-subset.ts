import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'

/**
 * The part of the Ticksupply v1 API that the conformance suite uses, as a framework-neutral
 * route table over in-memory state: catalog datastreams, subscriptions (create, list, get,
 * pause, resume, delete) and export schemas with drafts (create, list, delete; draft POST, GET, PUT,
 * DELETE), plus `/openapi.json`. Each example app mounts this table on one framework behind
 * one idempotency adapter, so that the apps differ only in that adapter and its defect.
 */

/** An answer the error envelope renders: `{"error":{"code","message","details"?}}`. */
export interface ApiError {
  readonly status: number
  readonly code: string
  readonly message: string
  readonly details?: Readonly<Record<string, unknown>>
}

/** What an operation answers: a status and a JSON body, or no body. */
export interface Outcome {
  readonly status: number
  readonly body?: unknown
}

export interface SubsetRequest {
  /** The authenticated account. */
  readonly account: string
  readonly params: Readonly<Record<string, string>>
  readonly query: Readonly<Record<string, string | undefined>>
  /** The parsed JSON body; `undefined` when there was none. */
  readonly body: unknown
}

export interface SubsetRoute {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  /** Path with `:name` parameters, e.g. `/v1/subscriptions/:id/pause`. */
  readonly path: string
  /** Checks the parsed body before any key is claimed (the contract's step 4). */
  readonly validate?: (body: unknown) => ApiError | undefined
  readonly handle: (request: SubsetRequest) => Outcome
}

export interface TicksupplySubset {
  readonly routes: readonly SubsetRoute[]
  /** The account of an `X-Api-Key` value, or undefined (a 401). */
  authenticate(apiKey: string | undefined): string | undefined
  /** The published policy, from the values the engine runs with. */
  openApiDocument(policy: { readonly ttlMs: number; readonly waitMs: number }): unknown
}

export const UNAUTHENTICATED: ApiError = {
  status: 401,
  code: 'unauthenticated',
  message: 'Invalid or missing API key',
}

/**
 * The example apps' test hook: a mutating operation sleeps this many milliseconds once its key
 * is claimed (the suite's `--slow-header`). Headers are not part of the fingerprint.
 */
export const DELAY_HEADER = 'x-conformance-delay-ms'
const MAX_DELAY_MS = 30_000

/** Sleeps as the delay header says (bounded), then runs the operation. */
export async function runOperation(
  route: SubsetRoute,
  request: SubsetRequest,
  delayHeader: string | undefined,
): Promise<Outcome> {
  const delayMs = Math.min(Number(delayHeader ?? 0) || 0, MAX_DELAY_MS)
  if (route.method !== 'GET' && delayMs > 0) await sleep(delayMs)
  return route.handle(request)
}

export function envelope(error: ApiError): string {
  const { code, message, details } = error
  return JSON.stringify({
    error: details === undefined ? { code, message } : { code, message, details },
  })
}

/** `req_` and 16 hex digits, as the API's `X-Request-Id`. */
export const newRequestId = (): string => `req_${randomBytes(8).toString('hex')}`

const newId = (prefix: string) => `${prefix}_${randomBytes(16).toString('hex')}`

const invalid = (message: string): ApiError => ({ status: 400, code: 'invalid_argument', message })
const failure = (error: ApiError): Outcome => ({
  status: error.status,
  body: { error: { code: error.code, message: error.message } },
})
const notFound = (message: string): Outcome => ({
  status: 404,
  body: { error: { code: 'not_found', message } },
})

interface Subscription {
  readonly id: string
  readonly datastream_id: number
  status: 'active' | 'paused' | 'deleted'
  created_at: string
}

interface Column {
  readonly output_column: string
  readonly [name: string]: unknown
}

interface ExportSchema {
  readonly id: string
  readonly name: string
  readonly stream_category: string
  readonly created_at: string
  readonly columns: readonly Column[]
  draft: readonly Column[] | undefined
}

const STREAM_CATEGORIES = [
  'trade',
  'orderbook',
  'book_update',
  'quote',
  'kline',
  'ticker',
  'liquidation',
]
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

function validateColumns(value: unknown): ApiError | undefined {
  if (!Array.isArray(value) || value.length < 1 || value.length > 100) {
    return invalid('columns must be an array of 1 to 100 columns')
  }
  const bad = value.some(
    (column) => !isObject(column) || typeof column['output_column'] !== 'string',
  )
  return bad ? invalid('every column needs an output_column') : undefined
}

function pageParams(
  query: SubsetRequest['query'],
  defaults: { limit: number; max: number },
): { limit: number; offset: number } | ApiError {
  const limit = query['limit'] === undefined ? defaults.limit : Number(query['limit'])
  if (!Number.isInteger(limit) || limit < 1 || limit > defaults.max) {
    return invalid(`limit must be between 1 and ${String(defaults.max)}`)
  }
  const offset = query['page_token'] === undefined ? 0 : Number(query['page_token'])
  if (!Number.isInteger(offset) || offset < 0) return invalid('Invalid page_token')
  return { limit, offset }
}

function page(items: readonly unknown[], paging: { limit: number; offset: number }): Outcome {
  const end = paging.offset + paging.limit
  return {
    status: 200,
    body: {
      items: items.slice(paging.offset, end),
      total: items.length,
      limit: paging.limit,
      next_page_token: end < items.length ? String(end) : null,
    },
  }
}

/**
 * A fresh subset with `datastreamCount` catalog datastreams (ids 1..N) and the accounts of
 * `apiKeys` (API key -> account name; several keys may name one account).
 */
export function createTicksupplySubset(options: {
  readonly apiKeys: Readonly<Record<string, string>>
  readonly datastreamCount?: number
}): TicksupplySubset {
  const datastreams = Array.from({ length: options.datastreamCount ?? 120 }, (_, i) => ({
    datastream_id: i + 1,
    exchange: 'binance',
    instrument: `SYM${String(i + 1)}USDT`,
    stream_type: 'trade',
    wire_format: 'json',
  }))
  const subscriptions = new Map<string, Subscription[]>()
  const schemas = new Map<string, ExportSchema[]>()
  const subscriptionsOf = (account: string) => {
    const list = subscriptions.get(account) ?? []
    subscriptions.set(account, list)
    return list
  }
  const schemasOf = (account: string) => {
    const list = schemas.get(account) ?? []
    schemas.set(account, list)
    return list
  }
  const view = (sub: Subscription) => ({
    ...sub,
    datastream: datastreams[sub.datastream_id - 1],
  })
  const schemaView = (schema: ExportSchema, columns = schema.columns) => ({
    id: schema.id,
    name: schema.name,
    stream_category: schema.stream_category,
    is_built_in: false,
    created_at: schema.created_at,
    version: 1,
    has_draft: schema.draft !== undefined,
    columns,
  })
  const findSubscription = (request: SubsetRequest) =>
    subscriptionsOf(request.account).find((sub) => sub.id === request.params['id'])
  const findSchema = (request: SubsetRequest) =>
    schemasOf(request.account).find((schema) => schema.id === request.params['id'])
  const now = () => new Date().toISOString()

  const changeSubscription =
    (to: 'active' | 'paused') =>
    (request: SubsetRequest): Outcome => {
      const sub = findSubscription(request)
      if (sub === undefined) return notFound('Subscription not found')
      if (sub.status === 'deleted') {
        return {
          status: 403,
          body: { error: { code: 'permission_denied', message: 'Subscription has been deleted' } },
        }
      }
      sub.status = to
      return { status: 204 }
    }

  const routes: SubsetRoute[] = [
    {
      method: 'GET',
      path: '/v1/datastreams',
      handle: ({ query }) => {
        const paging = pageParams(query, { limit: 100, max: 1000 })
        return 'code' in paging ? failure(paging) : page(datastreams, paging)
      },
    },
    {
      method: 'POST',
      path: '/v1/subscriptions',
      validate: (body) => {
        if (!isObject(body)) return invalid('body must be an object')
        const extra = Object.keys(body).filter((name) => name !== 'datastream_id')
        if (extra.length > 0) return invalid(`unknown field ${extra[0] ?? ''}`)
        const id = body['datastream_id']
        return typeof id === 'number' && Number.isSafeInteger(id) && id > 0
          ? undefined
          : invalid('datastream_id must be a positive integer')
      },
      handle: ({ account, body }) => {
        const datastreamId = (body as { datastream_id: number }).datastream_id
        if (datastreams[datastreamId - 1] === undefined)
          return notFound(`Datastream ${String(datastreamId)} not found`)
        const list = subscriptionsOf(account)
        const existing = list.find((sub) => sub.datastream_id === datastreamId)
        if (existing !== undefined && existing.status !== 'deleted') {
          return {
            status: 409,
            body: {
              error: {
                code: 'already_exists',
                message: 'Subscription already exists',
                details: { subscription_id: existing.id },
              },
            },
          }
        }
        const sub = existing ?? {
          id: newId('sub'),
          datastream_id: datastreamId,
          status: 'active',
          created_at: now(),
        }
        if (existing === undefined) list.push(sub)
        sub.status = 'active'
        sub.created_at = now()
        return { status: 201, body: { ...view(sub), spans: [] } }
      },
    },
    {
      method: 'GET',
      path: '/v1/subscriptions',
      handle: ({ account, query }) => {
        const paging = pageParams(query, { limit: 50, max: 100 })
        if ('code' in paging) return failure(paging)
        const listed = subscriptionsOf(account)
          .filter((sub) => sub.status !== 'deleted')
          .reverse()
        return page(listed.map(view), paging)
      },
    },
    {
      method: 'GET',
      path: '/v1/subscriptions/:id',
      handle: (request) => {
        const sub = findSubscription(request)
        return sub === undefined
          ? notFound('Subscription not found')
          : { status: 200, body: view(sub) }
      },
    },
    { method: 'POST', path: '/v1/subscriptions/:id/pause', handle: changeSubscription('paused') },
    { method: 'POST', path: '/v1/subscriptions/:id/resume', handle: changeSubscription('active') },
    {
      method: 'DELETE',
      path: '/v1/subscriptions/:id',
      handle: (request) => {
        const sub = findSubscription(request)
        if (sub === undefined) return notFound('Subscription not found')
        sub.status = 'deleted'
        return { status: 204 }
      },
    },
    {
      method: 'POST',
      path: '/v1/export-schemas',
      validate: (body) => {
        if (!isObject(body)) return invalid('body must be an object')
        if (typeof body['name'] !== 'string' || body['name'] === '')
          return invalid('name is required')
        if (!STREAM_CATEGORIES.includes(String(body['stream_category'])))
          return invalid('unknown stream_category')
        return validateColumns(body['columns'])
      },
      handle: ({ account, body }) => {
        const { name, stream_category, columns } = body as {
          name: string
          stream_category: string
          columns: Column[]
        }
        const list = schemasOf(account)
        if (
          list.some((schema) => schema.name === name && schema.stream_category === stream_category)
        ) {
          return {
            status: 409,
            body: { error: { code: 'already_exists', message: 'Schema name already used' } },
          }
        }
        const schema: ExportSchema = {
          id: newId('sch'),
          name,
          stream_category,
          created_at: now(),
          columns,
          draft: undefined,
        }
        list.push(schema)
        return { status: 201, body: schemaView(schema) }
      },
    },
    {
      method: 'GET',
      path: '/v1/export-schemas',
      handle: ({ account }) => ({
        status: 200,
        body: schemasOf(account).map((schema) => schemaView(schema)),
      }),
    },
    {
      method: 'DELETE',
      path: '/v1/export-schemas/:id',
      handle: (request) => {
        const list = schemasOf(request.account)
        const index = list.findIndex((schema) => schema.id === request.params['id'])
        if (index === -1) return notFound('Export schema not found')
        list.splice(index, 1)
        return { status: 204 }
      },
    },
    {
      method: 'POST',
      path: '/v1/export-schemas/:id/draft',
      validate: (body) =>
        body === undefined
          ? undefined
          : isObject(body)
            ? validateColumns(body['columns'])
            : invalid('body must be an object'),
      handle: (request) => {
        const schema = findSchema(request)
        if (schema === undefined) return notFound('Export schema not found')
        const body = request.body as { columns: Column[] } | undefined
        schema.draft = body?.columns ?? schema.columns
        return { status: 201, body: schemaView(schema, schema.draft) }
      },
    },
    {
      method: 'GET',
      path: '/v1/export-schemas/:id/draft',
      handle: (request) => {
        const schema = findSchema(request)
        if (schema?.draft === undefined) return notFound('No draft')
        return { status: 200, body: schemaView(schema, schema.draft) }
      },
    },
    {
      method: 'PUT',
      path: '/v1/export-schemas/:id/draft',
      validate: (body) =>
        isObject(body) ? validateColumns(body['columns']) : invalid('body must be an object'),
      handle: (request) => {
        const schema = findSchema(request)
        if (schema?.draft === undefined) return notFound('No draft')
        schema.draft = (request.body as { columns: Column[] }).columns
        return { status: 200, body: schemaView(schema, schema.draft) }
      },
    },
    {
      method: 'DELETE',
      path: '/v1/export-schemas/:id/draft',
      handle: (request) => {
        const schema = findSchema(request)
        if (schema?.draft === undefined) return notFound('No draft')
        schema.draft = undefined
        return { status: 204 }
      },
    },
  ]

  return {
    routes,
    authenticate: (apiKey) => (apiKey === undefined ? undefined : options.apiKeys[apiKey]),
    openApiDocument: (policy) => openApiDocument(routes, policy),
  }
}

function openApiDocument(
  routes: readonly SubsetRoute[],
  policy: { readonly ttlMs: number; readonly waitMs: number },
): unknown {
  const hours = policy.ttlMs / 3_600_000
  const seconds = policy.waitMs / 1000
  const keyDescription = [
    'A UUID (hyphenated, simple, braced or URN; any letter case) naming this operation, scoped to the account.',
    `A key lives ${String(hours)} hours from its first use.`,
    `A retry that arrives while the original still runs waits up to ${String(seconds)} s for it, then gets 409 with Retry-After: 1.`,
    'Answers below 500 are stored and replayed; a 5xx or a 408 is not stored, so a retry runs again.',
  ].join(' ')
  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of routes) {
    const path = route.path.replace(/:(\w+)/g, '{$1}')
    const keyed = route.method === 'POST' || route.method === 'DELETE'
    paths[path] = {
      ...paths[path],
      [route.method.toLowerCase()]: {
        responses: { default: { description: 'See the Ticksupply API.' } },
        ...(keyed
          ? {
              parameters: [
                {
                  in: 'header',
                  name: 'Idempotency-Key',
                  required: false,
                  description: keyDescription,
                  schema: { type: 'string', maxLength: 128 },
                },
              ],
            }
          : {}),
      },
    }
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Ticksupply API (conformance example)', version: '1.0.0' },
    paths,
  }
}
