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
  readonly wire_format: string
}

export interface DatastreamListParams extends PageParams {
  readonly exchange?: string
  readonly instrument?: string
  readonly stream_type?: StreamType
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
  readonly datastream_id: number
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

export interface ExportJob {
  readonly id: string
  readonly datastream_id: number
  readonly start_time: Nanoseconds
  readonly end_time: Nanoseconds
  readonly format: ExportFormat
  readonly format_options: Readonly<Record<string, unknown>>
  readonly status: ExportStatus
  /** RFC 3339 UTC, like every timestamp of a resource; only the range is in nanoseconds. */
  readonly created_at: string
  readonly started_at: string | null
  readonly finished_at: string | null
  /** Only when `status` is `failed`. */
  readonly reason?: string
}

export interface CreateExportParams {
  readonly datastream_id: number
  /** Integer nanoseconds (as a number or a decimal string), or ISO 8601 with up to 9 fractional digits. */
  readonly start_time: number | string
  readonly end_time: number | string
  /** A built-in name (`raw`, `normalized`, `book_5`, `book_20`), a `sch_` ID, or an inline schema. */
  readonly schema?: string | InlineSchema
  readonly format?: ExportFormat
  readonly format_options?: Readonly<Record<string, unknown>>
}

export interface InlineSchema {
  readonly columns: readonly SchemaColumn[]
  readonly unfold?: unknown
  readonly derive?: unknown
}

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

export interface MetaColumnSource {
  readonly value: 'collection_timestamp_ns'
  readonly format: TimestampFormat
}

export interface DataColumnSource {
  readonly json: { readonly path: string; readonly type: string }
  readonly transform?: unknown
}

/** An output column: exactly one of `meta` or `data` (per exchange). */
export interface SchemaColumn {
  readonly output_column: string
  readonly meta?: MetaColumnSource
  readonly data?: Readonly<Record<string, DataColumnSource>>
}

export interface ExportSchema {
  readonly id: string
  readonly name: string
  readonly stream_category: StreamCategory
  readonly is_built_in: boolean
  readonly created_at: string
  readonly version: number
  readonly has_draft: boolean
  readonly columns: readonly SchemaColumn[]
  readonly unfold?: unknown
  readonly derive?: unknown
}

export interface CreateSchemaParams {
  readonly name: string
  readonly stream_category: StreamCategory
  readonly columns: readonly SchemaColumn[]
  readonly unfold?: unknown
  readonly derive?: unknown
}

/** A draft body; omitted or `null` `unfold`/`derive` clear them. */
export interface SchemaDraftParams {
  readonly columns: readonly SchemaColumn[]
  readonly unfold?: unknown
  readonly derive?: unknown
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
