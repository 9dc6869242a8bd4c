import type { ComponentSchema } from '../../http/schemas.js'
import { ref } from '../../http/schemas.js'

const STREAM_CATEGORIES = [
  'trade',
  'orderbook',
  'book_update',
  'quote',
  'kline',
  'ticker',
  'liquidation',
]

export const EXPORT_SCHEMA_COLUMN_SCHEMA = {
  $id: 'ExportSchemaColumn',
  type: 'object',
  description:
    '`output_column` and exactly one of `meta` (`{"value":"collection_timestamp_ns","format":"ns|us|ms|s|iso8601"}`) or `data` (per exchange `{"json":{"path","type"},"transform"?}`; `type` is `decimal(N)`, `f64`, `i64`, `string` or `bool`; see docs/decisions/0203-export-schema-semantics.md for transforms).',
  required: ['output_column'],
  additionalProperties: false,
  properties: {
    output_column: { type: 'string' },
    meta: { type: 'object', additionalProperties: true },
    data: { type: 'object', additionalProperties: true },
  },
} as const satisfies ComponentSchema

export const EXPORT_SCHEMA_SCHEMA = {
  $id: 'ExportSchema',
  type: 'object',
  description: 'A schema: its latest published version, or its draft on the draft endpoints.',
  required: [
    'id',
    'name',
    'stream_category',
    'is_built_in',
    'created_at',
    'version',
    'has_draft',
    'columns',
  ],
  additionalProperties: false,
  properties: {
    id: { type: 'string', description: '`sch_` and 32 lowercase hex digits.' },
    name: { type: 'string' },
    stream_category: { type: 'string', enum: STREAM_CATEGORIES },
    is_built_in: { type: 'boolean' },
    created_at: { type: 'string', format: 'date-time' },
    version: { type: 'integer', minimum: 1, description: 'The latest published version.' },
    has_draft: { type: 'boolean' },
    columns: { type: 'array', items: ref(EXPORT_SCHEMA_COLUMN_SCHEMA.$id) },
    unfold: {
      type: 'object',
      additionalProperties: true,
      description: 'Per exchange `{"path"}` of an array whose elements become rows.',
    },
    derive: {
      type: 'object',
      additionalProperties: true,
      description:
        'Per exchange, fields built before extraction: `[{"field","concat":[{"path","tag"}]}]`.',
    },
  },
} as const satisfies ComponentSchema

export const EXPORT_JOB_SCHEMA = {
  $id: 'ExportJob',
  type: 'object',
  required: [
    'id',
    'datastream_id',
    'start_time',
    'end_time',
    'format',
    'format_options',
    'status',
    'created_at',
    'started_at',
    'finished_at',
  ],
  additionalProperties: false,
  properties: {
    id: { type: 'string', description: '`exp_` and 32 lowercase hex digits.' },
    datastream_id: { type: 'integer', minimum: 1 },
    start_time: {
      type: 'integer',
      format: 'int64',
      description: 'Nanoseconds since the epoch, written exactly (parse as int64, not double).',
    },
    end_time: { type: 'integer', format: 'int64', description: 'Nanoseconds, exclusive.' },
    format: { type: 'string', enum: ['csv', 'parquet'] },
    format_options: {
      type: 'object',
      additionalProperties: true,
      description:
        'Resolved: `{}` for csv; `{"compression":"snappy|gzip|none","row_group_size"}` for parquet.',
    },
    status: { type: 'string', enum: ['queued', 'running', 'succeeded', 'failed', 'canceled'] },
    created_at: { type: 'string', format: 'date-time' },
    started_at: { type: ['string', 'null'], format: 'date-time' },
    finished_at: { type: ['string', 'null'], format: 'date-time' },
    reason: { type: 'string', description: 'Only when `status` is `failed`.' },
  },
} as const satisfies ComponentSchema

export const EXPORT_DOWNLOAD_SCHEMA = {
  $id: 'ExportDownload',
  type: 'object',
  required: ['artifacts', 'count', 'total_bytes'],
  additionalProperties: false,
  properties: {
    artifacts: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'url', 'bytes', 'filename'],
        additionalProperties: false,
        properties: {
          id: { type: 'string', description: '`art_` and 32 lowercase hex digits.' },
          url: {
            type: 'string',
            description: 'A signed, expiring link served by this server; no API key needed.',
          },
          bytes: { type: 'integer', minimum: 0 },
          filename: {
            type: 'string',
            description:
              '`{exchange}_{instrument}_{stream_type}_part_{YYYYMMDDHH}.csv.gz` (or `.parquet`).',
          },
        },
      },
    },
    count: { type: 'integer', minimum: 0 },
    total_bytes: { type: 'integer', minimum: 0 },
  },
} as const satisfies ComponentSchema

/** Shown in the document only: the routes' own parsers validate (see preValidation). */
const columnsProperties = {
  columns: {
    type: 'array',
    items: ref(EXPORT_SCHEMA_COLUMN_SCHEMA.$id),
    description: '1 to 100 columns.',
  },
  unfold: { description: 'Per exchange `{"path"}`; omitted or null clears it.' },
  derive: { description: 'Per exchange derive rules; omitted or null clears it.' },
}

export const CREATE_SCHEMA_BODY = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    stream_category: { type: 'string', enum: STREAM_CATEGORIES },
    ...columnsProperties,
  },
}

/** `name` and `stream_category` may be sent back unchanged; `columns` is the new version's. */
export const REPLACE_SCHEMA_BODY = {
  type: 'object',
  properties: {
    name: { type: 'string', description: 'Unchanged, if sent.' },
    stream_category: {
      type: 'string',
      enum: STREAM_CATEGORIES,
      description: 'Unchanged, if sent.',
    },
    ...columnsProperties,
  },
}

/** No `type`: an empty body (no body at all) is allowed on POST draft. */
export const DRAFT_BODY = { properties: columnsProperties }

/** No types on the times: integers past 2^53 reach the parser as bigints, exact. */
export const CREATE_EXPORT_BODY = {
  type: 'object',
  properties: {
    datastream_id: { description: 'A positive int64.' },
    start_time: {
      description:
        'Nanoseconds since the epoch as a JSON integer or a string of digits, or ISO 8601 with up to 9 fractional digits. Inclusive.',
    },
    end_time: { description: 'Like `start_time`; exclusive, after `start_time`.' },
    schema: {
      description:
        '`raw` (default), `normalized`, `book_5`, `book_20`, a schema id `sch_...`, or an inline `{"columns","unfold"?,"derive"?}`.',
    },
    format: { type: 'string', enum: ['csv', 'parquet'] },
    format_options: { type: 'object' },
  },
}

export const EXPORT_SCHEMAS: readonly ComponentSchema[] = [
  EXPORT_SCHEMA_COLUMN_SCHEMA,
  EXPORT_SCHEMA_SCHEMA,
  EXPORT_JOB_SCHEMA,
  EXPORT_DOWNLOAD_SCHEMA,
]
