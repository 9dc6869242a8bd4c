import { combineSignals } from './combine-signals.js'
import type { DownloadFilesOptions } from './download-files.js'
import { downloadFiles } from './download-files.js'
import { parseExportJson } from './parse-export-json.js'
import type { ResponseMetadata } from './response-metadata.js'
import { attachMetadata } from './response-metadata.js'
import type { WaitForExportOptions } from './wait-for-export.js'
import { waitForExport } from './wait-for-export.js'
import type { ClientOptions } from './options.js'
import { resolveClientOptions } from './options.js'
import { paginate } from './pagination.js'
import type { ResponseShape } from './response-shape.js'
import { expectShape } from './response-shape.js'
import type { ApiRequest, ApiResponse, CallOptions, MutationOptions } from './send-with-retries.js'
import { sendWithRetries } from './send-with-retries.js'
import type {
  Availability,
  BillingSummary,
  CreateExportParams,
  CreateSchemaParams,
  CreateSubscriptionParams,
  Datastream,
  DatastreamListParams,
  Exchange,
  ExportDownload,
  ExportJob,
  ExportSchema,
  ExportSchemaDraft,
  Instrument,
  InstrumentListParams,
  Page,
  PageParams,
  ReplaceSchemaParams,
  SchemaDraftParams,
  Span,
  Subscription,
} from './types.js'

export interface ExchangesApi {
  /** `GET /v1/exchanges`: every exchange of the catalog. */
  list(options?: CallOptions): Promise<Exchange[]>
}

export interface InstrumentsApi {
  /** `GET /v1/exchanges/{exchange}/instruments`: one page. */
  list(
    exchange: string,
    params?: InstrumentListParams,
    options?: CallOptions,
  ): Promise<Page<Instrument>>
  /** Every instrument of the exchange, page after page. */
  iterate(
    exchange: string,
    params?: Omit<InstrumentListParams, 'page_token'>,
    options?: CallOptions,
  ): AsyncGenerator<Instrument, void, undefined>
}

export interface DatastreamsApi {
  /** `GET /v1/datastreams`: one page. */
  list(params?: DatastreamListParams, options?: CallOptions): Promise<Page<Datastream>>
  /** Every matching datastream, page after page. */
  iterate(
    params?: Omit<DatastreamListParams, 'page_token'>,
    options?: CallOptions,
  ): AsyncGenerator<Datastream, void, undefined>
}

export interface SubscriptionsApi {
  /** `POST /v1/subscriptions`: starts recording a datastream (answers with `spans: []`). */
  create(params: CreateSubscriptionParams, options?: MutationOptions): Promise<Subscription>
  /** `GET /v1/subscriptions`: one page, newest first, deleted ones left out. */
  list(params?: PageParams, options?: CallOptions): Promise<Page<Subscription>>
  iterate(
    params?: Omit<PageParams, 'page_token'>,
    options?: CallOptions,
  ): AsyncGenerator<Subscription, void, undefined>
  /** `GET /v1/subscriptions/{id}`; a deleted one shows `status: "deleted"`. */
  get(id: string, options?: CallOptions): Promise<Subscription>
  /** `POST /v1/subscriptions/{id}/pause`: closes the open span. */
  pause(id: string, options?: MutationOptions): Promise<ResponseMetadata>
  /** `POST /v1/subscriptions/{id}/resume`: opens a span. */
  resume(id: string, options?: MutationOptions): Promise<ResponseMetadata>
  /** `DELETE /v1/subscriptions/{id}`: stops recording and removes all spans. */
  delete(id: string, options?: MutationOptions): Promise<ResponseMetadata>
  /** `GET /v1/subscriptions/{id}/spans`: oldest first. */
  spans(id: string, options?: CallOptions): Promise<Span[]>
}

export interface ExportsApi {
  /** `POST /v1/exports`: queues an export job. */
  create(params: CreateExportParams, options?: MutationOptions): Promise<ExportJob>
  /** `GET /v1/exports`: one page, newest first. */
  list(params?: PageParams, options?: CallOptions): Promise<Page<ExportJob>>
  iterate(
    params?: Omit<PageParams, 'page_token'>,
    options?: CallOptions,
  ): AsyncGenerator<ExportJob, void, undefined>
  /** `GET /v1/exports/{id}`. */
  get(id: string, options?: CallOptions): Promise<ExportJob>
  /** `POST /v1/exports/{id}/cancel`: stops a queued or running job. */
  cancel(id: string, options?: MutationOptions): Promise<ResponseMetadata>
  /** `DELETE /v1/exports/{id}`: cancels it if running and deletes the job and its files. */
  delete(id: string, options?: MutationOptions): Promise<ResponseMetadata>
  /** `GET /v1/exports/{id}/download`: signed links to the files of a succeeded job. */
  download(id: string, options?: CallOptions): Promise<ExportDownload>
  /**
   * Reads the job until it has finished and resolves it (succeeded, failed or canceled: check
   * `status`), telling `onProgress` after each read of an unfinished job.
   */
  waitFor(id: string, options?: WaitForExportOptions): Promise<ExportJob>
  /**
   * Saves the files of a succeeded job into `directory` (resuming `.partial` files left by an
   * interrupted download) and resolves their paths. `timeoutMs` (the call's, else the
   * client's) is the longest stall of a file, unless `idleTimeoutMs` says otherwise;
   * `deadlineMs`, given on the call, bounds the whole download.
   */
  downloadFiles(
    id: string,
    directory: string,
    options?: DownloadFilesOptions & CallOptions,
  ): Promise<string[]>
}

export interface AvailabilityApi {
  /** `GET /v1/availability?datastream_id=N`: the time ranges the account recorded. */
  get(datastreamId: number | string, options?: CallOptions): Promise<Availability>
}

export interface ExportSchemasApi {
  /** `POST /v1/export-schemas`: version 1 of a new schema. */
  create(params: CreateSchemaParams, options?: MutationOptions): Promise<ExportSchema>
  /** `GET /v1/export-schemas`: built-ins first, then the account's. */
  list(options?: CallOptions): Promise<ExportSchema[]>
  /** `GET /v1/export-schemas/{id}`: the latest published version. */
  get(id: string, options?: CallOptions): Promise<ExportSchema>
  /** `PUT /v1/export-schemas/{id}`: publishes `params` as version + 1 in one step (no key). */
  replace(id: string, params: ReplaceSchemaParams, options?: CallOptions): Promise<ExportSchema>
  /** `DELETE /v1/export-schemas/{id}`. */
  delete(id: string, options?: MutationOptions): Promise<ResponseMetadata>
  /**
   * `POST /v1/export-schemas/{id}/draft`: replaces any draft; without `params` the draft is a
   * copy of the published version.
   */
  createDraft(
    id: string,
    params?: SchemaDraftParams,
    options?: MutationOptions,
  ): Promise<ExportSchemaDraft>
  /** `GET /v1/export-schemas/{id}/draft`. */
  getDraft(id: string, options?: CallOptions): Promise<ExportSchemaDraft>
  /** `PUT /v1/export-schemas/{id}/draft`: replaces the draft; a PUT needs no key. */
  updateDraft(
    id: string,
    params: SchemaDraftParams,
    options?: CallOptions,
  ): Promise<ExportSchemaDraft>
  /** `DELETE /v1/export-schemas/{id}/draft`. */
  deleteDraft(id: string, options?: MutationOptions): Promise<ResponseMetadata>
  /** `POST /v1/export-schemas/{id}/publish`: the draft becomes version + 1. */
  publish(id: string, options?: MutationOptions): Promise<ExportSchema>
}

export interface BillingApi {
  /** `GET /v1/billing/summary`. */
  summary(options?: CallOptions): Promise<BillingSummary>
}

/** A client of the Ticksupply v1 API; see {@link createClient}. */
export interface TicksupplyClient {
  readonly exchanges: ExchangesApi
  readonly instruments: InstrumentsApi
  readonly datastreams: DatastreamsApi
  readonly subscriptions: SubscriptionsApi
  readonly availability: AvailabilityApi
  readonly exports: ExportsApi
  readonly exportSchemas: ExportSchemasApi
  readonly billing: BillingApi
  /**
   * Sends any request with the same retries and keys as the methods, and answers with the
   * response's metadata as well (whether it was a replay, how many attempts it took). A
   * method's result carries the same metadata: `responseOf(result)`; methods whose answer has
   * no body (204) resolve to it.
   */
  request<T>(request: ApiRequest, options?: MutationOptions): Promise<ApiResponse<T>>
}

/**
 * Creates a client. Every POST and DELETE carries one `Idempotency-Key` per call, reused on
 * each retry, so that a retry never runs an operation twice.
 *
 * @throws TypeError when an option is invalid, naming it.
 * @example
 * const client = createClient({ apiKey: process.env.TICKSUPPLY_API_KEY ?? '' })
 * const subscription = await client.subscriptions.create({ datastream_id: 42 })
 */
export function createClient(options: ClientOptions): TicksupplyClient {
  const resolved = resolveClientOptions(options)
  const request = <T>(req: ApiRequest, call?: MutationOptions): Promise<ApiResponse<T>> =>
    sendWithRetries<T>(resolved, req, call)
  // The request is built inside the async function, so that a bad argument (an empty ID)
  // rejects the returned promise instead of throwing synchronously.
  const data = async <T>(
    build: () => ApiRequest,
    call?: MutationOptions,
    shape: ResponseShape = 'object',
  ): Promise<T> => {
    const { data: result, ...metadata } = await request<T>(build(), call)
    expectShape(result, shape, metadata)
    return attachMetadata(result, metadata)
  }
  const none = async (
    build: () => ApiRequest,
    call?: MutationOptions,
  ): Promise<ResponseMetadata> => {
    const response: ResponseMetadata & { data?: unknown } = {
      ...(await request<unknown>(build(), call)),
    }
    delete response.data
    return response
  }
  const exportJson = { parse: parseExportJson }
  const listInstruments: InstrumentsApi['list'] = (exchange, params = {}, options) =>
    data(
      () => ({
        method: 'GET',
        path: `/v1/exchanges/${segment('exchange', exchange)}/instruments`,
        query: { ...params },
      }),
      options,
    )

  const listDatastreams: DatastreamsApi['list'] = (params = {}, options) =>
    data(() => ({ method: 'GET', path: '/v1/datastreams', query: { ...params } }), options)

  const listSubscriptions: SubscriptionsApi['list'] = (params = {}, options) =>
    data(() => ({ method: 'GET', path: '/v1/subscriptions', query: { ...params } }), options)

  const listExports: ExportsApi['list'] = (params = {}, options) =>
    data(
      () => ({ method: 'GET', path: '/v1/exports', query: { ...params }, ...exportJson }),
      options,
    )

  const getExport: ExportsApi['get'] = (id, options) =>
    data(() => ({ method: 'GET', path: exportPath(id), ...exportJson }), options)

  const getDownload: ExportsApi['download'] = (id, options) =>
    data(() => ({ method: 'GET', path: `${exportPath(id)}/download` }), options)

  return {
    request,
    exchanges: {
      list: (options) => data(() => ({ method: 'GET', path: '/v1/exchanges' }), options, 'array'),
    },
    instruments: {
      list: listInstruments,
      iterate: (exchange, params = {}, options) =>
        paginate((page_token) => listInstruments(exchange, withToken(params, page_token), options)),
    },
    datastreams: {
      list: listDatastreams,
      iterate: (params = {}, options) =>
        paginate((page_token) => listDatastreams(withToken(params, page_token), options)),
    },
    subscriptions: {
      create: (params, options) =>
        data(() => ({ method: 'POST', path: '/v1/subscriptions', body: params }), options),
      list: listSubscriptions,
      iterate: (params = {}, options) =>
        paginate((page_token) => listSubscriptions(withToken(params, page_token), options)),
      get: (id, options) => data(() => ({ method: 'GET', path: subscriptionPath(id) }), options),
      pause: (id, options) =>
        none(() => ({ method: 'POST', path: `${subscriptionPath(id)}/pause` }), options),
      resume: (id, options) =>
        none(() => ({ method: 'POST', path: `${subscriptionPath(id)}/resume` }), options),
      delete: (id, options) =>
        none(() => ({ method: 'DELETE', path: subscriptionPath(id) }), options),
      spans: (id, options) =>
        data(() => ({ method: 'GET', path: `${subscriptionPath(id)}/spans` }), options, 'array'),
    },
    exports: {
      create: (params, options) =>
        data(() => ({ method: 'POST', path: '/v1/exports', body: params, ...exportJson }), options),
      list: listExports,
      iterate: (params = {}, options) =>
        paginate((page_token) => listExports(withToken(params, page_token), options)),
      get: getExport,
      cancel: (id, options) =>
        none(() => ({ method: 'POST', path: `${exportPath(id)}/cancel` }), options),
      delete: (id, options) => none(() => ({ method: 'DELETE', path: exportPath(id) }), options),
      download: getDownload,
      waitFor: (id, options) => waitForExport(getExport, id, options, resolved.signal),
      downloadFiles: async (id, directory, options = {}) => {
        const { onProgress, fetch: fetchFn, baseUrl, idleTimeoutMs, ...call } = options
        // The files are fetched outside sendWithRetries: the client's signal must reach them,
        // and its timeout too, as the longest stall (a whole file may rightly take longer).
        const signal = combineSignals(resolved.signal, call.signal)
        const deadlineMs = options.deadlineMs
        return downloadFiles(await getDownload(id, call), directory, {
          baseUrl: baseUrl ?? resolved.baseUrl,
          fetch: fetchFn ?? resolved.fetch,
          idleTimeoutMs: idleTimeoutMs ?? call.timeoutMs ?? resolved.timeoutMs,
          ...(deadlineMs === undefined ? {} : { deadlineMs }),
          ...(signal === undefined ? {} : { signal }),
          ...(onProgress === undefined ? {} : { onProgress }),
        })
      },
    },
    availability: {
      get: (datastreamId, options) =>
        data(
          () => ({
            method: 'GET',
            path: '/v1/availability',
            query: { datastream_id: datastreamParam(datastreamId) },
          }),
          options,
        ),
    },
    exportSchemas: {
      create: (params, options) =>
        data(() => ({ method: 'POST', path: '/v1/export-schemas', body: params }), options),
      list: (options) =>
        data(() => ({ method: 'GET', path: '/v1/export-schemas' }), options, 'array'),
      get: (id, options) => data(() => ({ method: 'GET', path: schemaPath(id) }), options),
      replace: (id, params, options) =>
        data(() => ({ method: 'PUT', path: schemaPath(id), body: params }), options),
      delete: (id, options) => none(() => ({ method: 'DELETE', path: schemaPath(id) }), options),
      createDraft: (id, params, options) =>
        data(
          () =>
            params === undefined
              ? { method: 'POST', path: `${schemaPath(id)}/draft` }
              : { method: 'POST', path: `${schemaPath(id)}/draft`, body: params },
          options,
        ),
      getDraft: (id, options) =>
        data(() => ({ method: 'GET', path: `${schemaPath(id)}/draft` }), options),
      updateDraft: (id, params, options) =>
        data(() => ({ method: 'PUT', path: `${schemaPath(id)}/draft`, body: params }), options),
      deleteDraft: (id, options) =>
        none(() => ({ method: 'DELETE', path: `${schemaPath(id)}/draft` }), options),
      publish: (id, options) =>
        data(() => ({ method: 'POST', path: `${schemaPath(id)}/publish` }), options),
    },
    billing: {
      summary: (options) => data(() => ({ method: 'GET', path: '/v1/billing/summary' }), options),
    },
  }
}

function withToken<P extends object>(params: P, pageToken: string | undefined): P & PageParams {
  return pageToken === undefined ? params : { ...params, page_token: pageToken }
}

const subscriptionPath = (id: string): string => `/v1/subscriptions/${segment('id', id)}`
const exportPath = (id: string): string => `/v1/exports/${segment('id', id)}`
const schemaPath = (id: string): string => `/v1/export-schemas/${segment('id', id)}`

/** A datastream id for the query: a positive integer, as a number or a string of digits. */
function datastreamParam(value: number | bigint | string): string {
  const text = String(value)
  if (!/^[1-9]\d{0,18}$/.test(text)) {
    throw new TypeError(
      `Expected \`datastreamId\` to be a positive integer, got ${JSON.stringify(value)}.`,
    )
  }
  return text
}

/** One path segment, encoded; an empty one would silently address the collection instead. */
function segment(name: string, value: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new TypeError(`Expected \`${name}\` to be a non-empty string.`)
  }
  return encodeURIComponent(value)
}
