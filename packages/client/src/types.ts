/**
 * The resources of the Ticksupply v1 API, with the API's own field names (snake_case), so that
 * what the client returns is exactly what the API documents and `--json` prints.
 */

/** One page of a paged list. */
export interface Page<T> {
  readonly items: readonly T[]
  /** How many items the whole list has. */
  readonly total: number
  readonly limit: number
  /** Pass as `page_token` to read the next page; `null` on the last page. */
  readonly next_page_token: string | null
}

/** The paging parameters of every paged list. */
export interface PageParams {
  /** Items per page; the server's default when omitted. */
  readonly limit?: number
  /** The `next_page_token` of the previous page. */
  readonly page_token?: string
}

export type StreamType =
  'trade' | 'orderbook' | 'book_update' | 'quote' | 'kline' | 'ticker' | 'liquidation'

/** A stream type as a request may name it: `trades`, the SDKs' spelling, means `trade`. */
export type StreamTypeInput = StreamType | 'trades'

export interface Exchange {
  readonly code: string
  readonly display_name: string
}

export interface Instrument {
  readonly symbol: string
  readonly base: string
  readonly quote: string
  readonly instrument_type: string
}

export interface InstrumentListParams extends PageParams {
  /** Case-insensitive symbol prefix. */
  readonly search?: string
}

export interface Datastream {
  readonly datastream_id: number
  readonly exchange: string
  readonly instrument: string
  readonly stream_type: StreamType
  readonly wire_format: 'json'
}

export interface DatastreamListParams extends PageParams {
  readonly exchange?: string
  readonly instrument?: string
  readonly stream_type?: StreamTypeInput
}

/** One stretch of recorded data; nanoseconds since the epoch as decimal strings. */
export interface AvailabilityRange {
  /** Inclusive. */
  readonly from: Nanoseconds
  /** Exclusive. */
  readonly to: Nanoseconds
  readonly rows_estimate: number
}

/** What the account recorded of a datastream (`GET /v1/availability`). */
export interface Availability {
  readonly datastream: Datastream
  readonly ranges: readonly AvailabilityRange[]
  /** When the ranges were computed. */
  readonly updated_at: string
}

export type SubscriptionStatus = 'active' | 'paused' | 'deleted'

export interface Subscription {
  readonly id: string
  readonly datastream_id: number
  readonly status: SubscriptionStatus
  /** RFC 3339 UTC. */
  readonly created_at: string
  readonly datastream: Datastream
  /** Present (and empty) only in the answer to a create. */
  readonly spans?: readonly Span[]
}

export interface CreateSubscriptionParams {
  /** An int64: a `bigint` (or a decimal string) keeps one past 2^53 exact. */
  readonly datastream_id: number | bigint
}

export interface Span {
  readonly id: string
  readonly started_at: string
  readonly ended_at: string | null
}

export type ExportStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled'
export type ExportFormat = 'csv' | 'parquet'

/**
 * Nanoseconds since the epoch as a decimal string. Today's times in nanoseconds exceed
 * `Number.MAX_SAFE_INTEGER` (about 9.007e15), so a JSON number would lose its last digits.
 */
export type Nanoseconds = string

/** Parquet's options; csv takes none. */
export interface FormatOptions {
  readonly compression?: 'snappy' | 'gzip' | 'none'
  /** 1 to 1,000,000 rows. */
  readonly row_group_size?: number
}

export interface ExportJob {
  readonly id: string
  readonly datastream_id: number
  readonly start_time: Nanoseconds
  readonly end_time: Nanoseconds
  readonly format: ExportFormat
  /** Resolved: `{}` for csv, every option filled in for parquet. */
  readonly format_options: FormatOptions
  readonly status: ExportStatus
  /** RFC 3339 UTC, like every timestamp of a resource; only the range is in nanoseconds. */
  readonly created_at: string
  readonly started_at: string | null
  readonly finished_at: string | null
  /** Only when `status` is `failed`. */
  readonly reason?: string
}

export interface CreateExportParams {
  /** An int64: a `bigint` keeps one past 2^53 exact. */
  readonly datastream_id: number | bigint
  /**
   * Integer nanoseconds (a `bigint` or a decimal string keeps them exact; a number past 2^53 is
   * already rounded), or ISO 8601 with up to 9 fractional digits.
   */
  readonly start_time: number | bigint | string
  readonly end_time: number | bigint | string
  /** A built-in name (`raw`, `normalized`, `book_5`, `book_20`), a `sch_` ID, or an inline schema. */
  readonly schema?: string | InlineSchema
  readonly format?: ExportFormat
  readonly format_options?: FormatOptions | null
}

/** An export's own columns, used once (the body of a draft). */
export type InlineSchema = SchemaDraftParams

export interface Artifact {
  readonly id: string
  /** A signed, expiring link that needs no API key. */
  readonly url: string
  readonly bytes: number
  readonly filename: string
}

export interface ExportDownload {
  readonly artifacts: readonly Artifact[]
  readonly count: number
  readonly total_bytes: number
}

export type StreamCategory = StreamType

export type TimestampFormat = 'ns' | 'us' | 'ms' | 's' | 'iso8601'

/** The exchange codes a column or rule may name. */
export type ExchangeCode = 'binance' | 'coinbase' | 'bybit_spot' | 'bybit_linear'

/** Something per exchange: a rule for each exchange code that has one. */
export type PerExchange<T> = Readonly<Partial<Record<ExchangeCode, T>>>

export interface MetaColumnSource {
  readonly value: 'collection_timestamp_ns'
  /** @default 'ns' */
  readonly format?: TimestampFormat
}

export interface DataColumnSource {
  /** `type`: `decimal(N)` (N 0 to 38), `f64`, `i64`, `string` or `bool`. */
  readonly json: { readonly path: string; readonly type: string }
  /** An SQL-like expression over `{v}`; exact on `decimal(N)` values. */
  readonly transform?: string | null
}

export interface MetaColumn {
  readonly output_column: string
  readonly meta: MetaColumnSource
}

export interface DataColumn {
  readonly output_column: string
  readonly data: PerExchange<DataColumnSource>
}

/** An output column: exactly one of `meta` or `data` (per exchange). */
export type SchemaColumn = MetaColumn | DataColumn

/** Per exchange, the array whose elements become rows. */
export type UnfoldRules = PerExchange<{ readonly path: string }>

/** Per exchange, fields built before extraction from arrays of the message. */
export type DeriveRules = PerExchange<
  readonly {
    readonly field: string
    readonly concat: readonly { readonly path: string; readonly tag: string }[]
  }[]
>

export interface ExportSchema {
  readonly id: string
  readonly name: string
  readonly stream_category: StreamCategory
  readonly is_built_in: boolean
  readonly created_at: string
  readonly version: number
  readonly has_draft: boolean
  readonly columns: readonly SchemaColumn[]
  readonly unfold?: UnfoldRules
  readonly derive?: DeriveRules
}

export interface CreateSchemaParams {
  readonly name: string
  readonly stream_category: StreamTypeInput
  readonly columns: readonly SchemaColumn[]
  readonly unfold?: UnfoldRules | null
  readonly derive?: DeriveRules | null
}

/** A draft body; omitted or `null` `unfold`/`derive` clear them. */
export interface SchemaDraftParams {
  readonly columns: readonly SchemaColumn[]
  readonly unfold?: UnfoldRules | null
  readonly derive?: DeriveRules | null
}

/**
 * The body of `PUT /v1/export-schemas/{id}`: the next published version. `name` and
 * `stream_category` may be sent back unchanged; another value is a 400.
 */
export interface ReplaceSchemaParams extends SchemaDraftParams {
  readonly name?: string
  readonly stream_category?: StreamTypeInput
}

export type AccessStatus = 'ACTIVE' | 'TRIALING' | 'GRACE' | 'SUSPENDED' | 'NONE'

export interface BillingSummary {
  readonly access_status: AccessStatus
  readonly usage: {
    /** Stream-minutes recorded beyond the plan's concurrent streams this period. */
    readonly extra_stream_minutes_total: number
    /** GiB exported this period, as a decimal string (e.g. `"1.250"`), exact where a float is not. */
    readonly export_gb_total: string
    /** Whole GiB beyond the plan's allowance, rounded up. */
    readonly export_gb_extra: number
  }
  readonly grace_until: string | null
  readonly plan_code: string | null
  readonly current_period_end: string | null
}

/**
 * The draft of an export schema, shown as the schema with the draft's columns (the server
 * answers drafts in the same shape as published versions).
 */
export type ExportSchemaDraft = ExportSchema
