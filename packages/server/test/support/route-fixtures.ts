/**
 * One request per route, for test/route-table.test.ts, which walks the server's route table and
 * checks the idempotency contract on every route.
 *
 * Every POST and DELETE route MUST have an entry in KEYED_ROUTE_FIXTURES (the test fails for a
 * route without one), keyed by `METHOD /url/:as/registered`. An entry makes fresh resources on
 * each call (it is called once per check) and answers:
 * - `request`: a request the route answers with `status`;
 * - `different`: the same route with another path or body, which a reused key must refuse.
 *
 * GET and PUT routes with path parameters may have an entry in READ_ROUTE_FIXTURES; without one
 * the parameters are filled with a placeholder (the route then answers 404, which is enough to
 * show that it ignores `Idempotency-Key`).
 */
import { send, subscribe } from './server.js'

export interface RouteRequest {
  readonly path: string
  /** A JSON body; none when undefined. */
  readonly body?: unknown
}

export interface KeyedRouteCase {
  readonly request: RouteRequest
  readonly status: number
  readonly different: RouteRequest
}

/** What fixtures may use: the server and fresh datastream ids. */
export interface FixtureContext {
  readonly url: string
  /** A datastream id no other fixture of this server used. */
  datastreamId(): number
}

async function freshSubscriptionId(context: FixtureContext): Promise<string> {
  return (await subscribe(context.url, context.datastreamId())).id
}

async function pausedSubscriptionId(context: FixtureContext): Promise<string> {
  const id = await freshSubscriptionId(context)
  const paused = await send(`${context.url}/v1/subscriptions/${id}/pause`, { method: 'POST' })
  if (paused.status !== 204) throw new Error(`pause failed: ${String(paused.status)}`)
  return id
}

export const KEYED_ROUTE_FIXTURES: Readonly<
  Record<string, (context: FixtureContext) => Promise<KeyedRouteCase>>
> = {
  'POST /v1/subscriptions': (context) =>
    Promise.resolve({
      request: { path: '/v1/subscriptions', body: { datastream_id: context.datastreamId() } },
      status: 201,
      different: { path: '/v1/subscriptions', body: { datastream_id: context.datastreamId() } },
    }),
  'POST /v1/subscriptions/:id/pause': async (context) => ({
    request: { path: `/v1/subscriptions/${await freshSubscriptionId(context)}/pause` },
    status: 204,
    different: { path: `/v1/subscriptions/${await freshSubscriptionId(context)}/pause` },
  }),
  'POST /v1/subscriptions/:id/resume': async (context) => ({
    request: { path: `/v1/subscriptions/${await pausedSubscriptionId(context)}/resume` },
    status: 204,
    different: { path: `/v1/subscriptions/${await pausedSubscriptionId(context)}/resume` },
  }),
  'DELETE /v1/subscriptions/:id': async (context) => ({
    request: { path: `/v1/subscriptions/${await freshSubscriptionId(context)}` },
    status: 204,
    different: { path: `/v1/subscriptions/${await freshSubscriptionId(context)}` },
  }),
  // Exports and export schemas (helpers at the end of this file).
  'POST /v1/exports': async (context) => {
    const datastreamId = await subscribedDatastream(context)
    const body = { datastream_id: datastreamId, start_time: '1', end_time: '2' }
    return {
      request: { path: '/v1/exports', body },
      status: 202,
      different: { path: '/v1/exports', body: { ...body, end_time: '3' } },
    }
  },
  // A canceled export answers 204 to cancel every time (a queued one might finish first).
  'POST /v1/exports/:id/cancel': async (context) => ({
    request: { path: `/v1/exports/${await canceledExportId(context)}/cancel` },
    status: 204,
    different: { path: `/v1/exports/${await canceledExportId(context)}/cancel` },
  }),
  'DELETE /v1/exports/:id': async (context) => ({
    request: { path: `/v1/exports/${await canceledExportId(context)}` },
    status: 204,
    different: { path: `/v1/exports/${await canceledExportId(context)}` },
  }),
  'POST /v1/export-schemas': () =>
    Promise.resolve({
      request: { path: '/v1/export-schemas', body: schemaBody() },
      status: 201,
      different: { path: '/v1/export-schemas', body: schemaBody() },
    }),
  'DELETE /v1/export-schemas/:id': async (context) => ({
    request: { path: `/v1/export-schemas/${await schemaId(context, false)}` },
    status: 204,
    different: { path: `/v1/export-schemas/${await schemaId(context, false)}` },
  }),
  'POST /v1/export-schemas/:id/draft': async (context) => ({
    request: { path: `/v1/export-schemas/${await schemaId(context, false)}/draft` },
    status: 201,
    different: { path: `/v1/export-schemas/${await schemaId(context, false)}/draft` },
  }),
  'DELETE /v1/export-schemas/:id/draft': async (context) => ({
    request: { path: `/v1/export-schemas/${await schemaId(context, true)}/draft` },
    status: 204,
    different: { path: `/v1/export-schemas/${await schemaId(context, true)}/draft` },
  }),
  'POST /v1/export-schemas/:id/publish': async (context) => ({
    request: { path: `/v1/export-schemas/${await schemaId(context, true)}/publish` },
    status: 200,
    different: { path: `/v1/export-schemas/${await schemaId(context, true)}/publish` },
  }),
}

export const READ_ROUTE_FIXTURES: Readonly<
  Record<string, (context: FixtureContext) => Promise<RouteRequest & { status: number }>>
> = {
  'GET /v1/exchanges/:exchange/instruments': () =>
    Promise.resolve({ path: '/v1/exchanges/binance/instruments', status: 200 }),
  'GET /v1/subscriptions/:id': async (context) => ({
    path: `/v1/subscriptions/${await freshSubscriptionId(context)}`,
    status: 200,
  }),
  'GET /v1/subscriptions/:id/spans': async (context) => ({
    path: `/v1/subscriptions/${await freshSubscriptionId(context)}/spans`,
    status: 200,
  }),
  'GET /docs/static/*': () => Promise.resolve({ path: '/docs/static/index.css', status: 200 }),
  'GET /v1/availability': (context) =>
    Promise.resolve({
      path: `/v1/availability?datastream_id=${String(context.datastreamId())}`,
      status: 200,
    }),
  'PUT /v1/export-schemas/:id': async (context) => ({
    path: `/v1/export-schemas/${await schemaId(context, false)}`,
    body: {
      columns: [{ output_column: 'ms', meta: { value: 'collection_timestamp_ns', format: 'ms' } }],
    },
    status: 200,
  }),
}

let schemaNames = 0

function schemaBody(): Record<string, unknown> {
  return {
    name: `fixture_${String(++schemaNames)}_${String(Date.now())}`,
    stream_category: 'trade',
    columns: [{ output_column: 'ts', meta: { value: 'collection_timestamp_ns' } }],
  }
}

async function schemaId(context: FixtureContext, withDraft: boolean): Promise<string> {
  const created = await send(`${context.url}/v1/export-schemas`, { body: schemaBody() })
  if (created.status !== 201) throw new Error(`schema create failed: ${created.text}`)
  const id = created.json<{ id: string }>().id
  if (withDraft) {
    const draft = await send(`${context.url}/v1/export-schemas/${id}/draft`, { method: 'POST' })
    if (draft.status !== 201) throw new Error(`draft failed: ${draft.text}`)
  }
  return id
}

// One subscription per server serves every export fixture: datastreams are few.
const exportDatastreams = new Map<string, Promise<number>>()

function subscribedDatastream(context: FixtureContext): Promise<number> {
  let datastreamId = exportDatastreams.get(context.url)
  if (datastreamId === undefined) {
    datastreamId = subscribe(context.url, context.datastreamId()).then(
      (subscription) => subscription.datastream_id,
    )
    exportDatastreams.set(context.url, datastreamId)
  }
  return datastreamId
}

async function canceledExportId(context: FixtureContext): Promise<string> {
  const datastreamId = await subscribedDatastream(context)
  const created = await send(`${context.url}/v1/exports`, {
    body: { datastream_id: datastreamId, start_time: '1', end_time: '2' },
  })
  if (created.status !== 202) throw new Error(`export failed: ${created.text}`)
  const id = created.json<{ id: string }>().id
  // Queued or running: canceled; finished already (no data to write): a fresh one is needed.
  const canceled = await send(`${context.url}/v1/exports/${id}/cancel`, { method: 'POST' })
  return canceled.status === 204 ? id : canceledExportId(context)
}
