import { SEED_EXCHANGES, STREAM_TYPE_INPUTS, STREAM_TYPES } from '../../domain/catalog-seed.js'
import { PARQUET_DEFAULTS } from '../../domain/exports/create-export-request.js'
import {
  FIELD,
  MAX_COLUMNS,
  META_FORMATS,
  OUTPUT_COLUMN,
  PATH,
  SCHEMA_NAME,
} from '../../domain/exports/schema-definition.js'
import type { ComponentSchema } from '../../http/schemas.js'
import { int64, ref } from '../../http/schemas.js'

const EXCHANGE_CODES = SEED_EXCHANGES.map((exchange) => exchange.code)
const EXPORT_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled']
const FORMATS = ['csv', 'parquet']

const path = (description: string) => ({ type: 'string', pattern: PATH.source, description })
/** An object keyed by exchange code. */
const perExchange = (value: Record<string, unknown>) => ({
  type: 'object',
  propertyNames: { enum: EXCHANGE_CODES },
  additionalProperties: value,
})

export const EXPORT_SCHEMA_COLUMN_SCHEMA = {
  $id: 'ExportSchemaColumn',
  description:
    'An output column: `output_column` and exactly one of `meta` or `data` (see docs/decisions/0203-export-schema-semantics.md).',
  oneOf: [
    {
      title: 'MetaColumn',
      type: 'object',
      required: ['output_column', 'meta'],
      additionalProperties: false,
      properties: {
        output_column: { type: 'string', pattern: OUTPUT_COLUMN.source },
        meta: {
          type: 'object',
          required: ['value'],
          additionalProperties: false,
          properties: {
            value: { const: 'collection_timestamp_ns' },
            format: {
              type: 'string',
              enum: [...META_FORMATS],
              default: 'ns',
              description: 'Integer ns, us, ms or s since the epoch, or an ISO 8601 string.',
            },
          },
        },
      },
    },
    {
      title: 'DataColumn',
      type: 'object',
      required: ['output_column', 'data'],
      additionalProperties: false,
      properties: {
        output_column: { type: 'string', pattern: OUTPUT_COLUMN.source },
        data: {
          ...perExchange({
            type: 'object',
            required: ['json'],
            additionalProperties: false,
            properties: {
              json: {
                type: 'object',
                required: ['path', 'type'],
                additionalProperties: false,
                properties: {
                  path: path('A dot path into the message; `$.` starts at its root.'),
                  type: {
                    type: 'string',
                    pattern: '^(decimal\\(([0-9]|[12][0-9]|3[0-8])\\)|f64|i64|string|bool)$',
                    description:
                      '`decimal(N)`: exact, N decimal places (0 to 38); `f64`, `i64`, `string`, `bool`.',
                  },
                },
              },
              transform: {
                type: ['string', 'null'],
                maxLength: 1000,
                description:
                  "An SQL-like expression over `{v}`, e.g. `CASE WHEN {v} THEN 'sell' ELSE 'buy' END`; arithmetic on a `decimal(N)` value is exact.",
              },
            },
          }),
          minProperties: 1,
          description: 'Per exchange code: where the value is and its type.',
        },
      },
    },
  ],
} as const satisfies ComponentSchema

const UNFOLD = {
  ...perExchange({
    type: 'object',
    required: ['path'],
    additionalProperties: false,
    properties: { path: path('An array in the message; each element becomes a row.') },
  }),
  description: 'Per exchange, an array whose elements become rows.',
}

const DERIVE = {
  ...perExchange({
    type: 'array',
    maxItems: 8,
    items: {
      type: 'object',
      required: ['field', 'concat'],
      additionalProperties: false,
      properties: {
        field: { type: 'string', pattern: FIELD.source },
        concat: {
          type: 'array',
          minItems: 1,
          maxItems: 8,
          items: {
            type: 'object',
            required: ['path', 'tag'],
            additionalProperties: false,
            properties: {
              path: path('An array to append.'),
              tag: { type: 'string', maxLength: 64 },
            },
          },
        },
      },
    },
  }),
  description:
    'Per exchange, fields built before extraction: `field` becomes the arrays of `concat` as `{"tag","index","value"}` elements.',
}

const COLUMNS = {
  type: 'array',
  minItems: 1,
  maxItems: MAX_COLUMNS,
  items: ref(EXPORT_SCHEMA_COLUMN_SCHEMA.$id),
  description: `1 to ${String(MAX_COLUMNS)} columns, in output order; more is a 400 with \`details.max_columns\`.`,
}

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
    id: { type: 'string', pattern: '^sch_[0-9a-f]{32}$' },
    name: { type: 'string' },
    stream_category: { type: 'string', enum: [...STREAM_TYPES] },
    is_built_in: { type: 'boolean' },
    created_at: { type: 'string', format: 'date-time' },
    version: { type: 'integer', minimum: 1, description: 'The latest published version.' },
    has_draft: { type: 'boolean' },
    columns: { type: 'array', items: ref(EXPORT_SCHEMA_COLUMN_SCHEMA.$id) },
    unfold: UNFOLD,
    derive: DERIVE,
  },
} as const satisfies ComponentSchema

const FORMAT_OPTIONS = {
  type: 'object',
  additionalProperties: false,
  properties: {
    compression: {
      type: 'string',
      enum: ['snappy', 'gzip', 'none'],
      default: PARQUET_DEFAULTS.compression,
    },
    row_group_size: {
      type: 'integer',
      minimum: 1,
      maximum: 1_000_000,
      default: PARQUET_DEFAULTS.row_group_size,
    },
  },
}

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
    id: { type: 'string', pattern: '^exp_[0-9a-f]{32}$' },
    datastream_id: int64(1),
    start_time: int64(
      0,
      'Nanoseconds since the epoch, inclusive, written exactly (parse as int64, not double).',
    ),
    end_time: int64(0, 'Nanoseconds since the epoch, exclusive.'),
    format: { type: 'string', enum: FORMATS },
    format_options: {
      ...FORMAT_OPTIONS,
      description:
        'Resolved: `{}` for csv; `compression` and `row_group_size`, defaults filled in, for parquet.',
    },
    status: { type: 'string', enum: EXPORT_STATUSES },
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
          id: { type: 'string', pattern: '^art_[0-9a-f]{32}$' },
          url: {
            type: 'string',
            format: 'uri',
            description:
              'A signed, expiring link served by this server; no API key needed. `Range` resumes.',
          },
          bytes: int64(0),
          filename: {
            type: 'string',
            description:
              '`{exchange}_{instrument}_{stream_type}_part_{YYYYMMDDHH}.csv.gz` (or `.parquet`).',
          },
        },
      },
    },
    count: { type: 'integer', minimum: 0 },
    total_bytes: int64(0),
  },
} as const satisfies ComponentSchema

const STREAM_CATEGORY_INPUT = {
  type: 'string',
  enum: [...STREAM_TYPE_INPUTS],
  description: 'The stream category (`trades` is accepted for `trade`).',
}

export const CREATE_SCHEMA_BODY = {
  type: 'object',
  required: ['name', 'stream_category', 'columns'],
  additionalProperties: false,
  properties: {
    name: {
      type: 'string',
      pattern: SCHEMA_NAME.source,
      description: 'Unique per account and stream category; never changes.',
    },
    stream_category: STREAM_CATEGORY_INPUT,
    columns: COLUMNS,
    unfold: { ...UNFOLD, type: ['object', 'null'] },
    derive: { ...DERIVE, type: ['object', 'null'] },
  },
}

/** A draft's content, and an inline schema of an export: `columns`, `unfold`?, `derive`?. */
export const DRAFT_BODY = {
  type: 'object',
  required: ['columns'],
  additionalProperties: false,
  properties: {
    columns: COLUMNS,
    unfold: { ...UNFOLD, type: ['object', 'null'], description: 'Omitted or null clears it.' },
    derive: { ...DERIVE, type: ['object', 'null'], description: 'Omitted or null clears it.' },
  },
}

/** `name` and `stream_category` may be sent back unchanged; `columns` is the new version's. */
export const REPLACE_SCHEMA_BODY = {
  ...DRAFT_BODY,
  properties: {
    name: { type: 'string', description: 'Unchanged, if sent.' },
    stream_category: { ...STREAM_CATEGORY_INPUT, description: 'Unchanged, if sent.' },
    ...DRAFT_BODY.properties,
  },
}

const NS_TIME = {
  anyOf: [
    int64(0),
    { type: 'string', pattern: '^[0-9]{1,19}$' },
    {
      type: 'string',
      format: 'date-time',
      description:
        'ISO 8601 (RFC 3339: `T` and `Z` in either case) with `Z` or an offset and up to 9 fractional digits; the seconds may be left out (`10:00Z`).',
    },
  ],
}

export const CREATE_EXPORT_BODY = {
  type: 'object',
  required: ['datastream_id', 'start_time', 'end_time'],
  additionalProperties: false,
  properties: {
    datastream_id: int64(1),
    start_time: {
      ...NS_TIME,
      description:
        'Inclusive: nanoseconds since the epoch as a JSON integer or a string of digits, or ISO 8601.',
    },
    end_time: { ...NS_TIME, description: 'Exclusive, after `start_time`; like `start_time`.' },
    schema: {
      description: 'What the files hold; `raw` by default.',
      default: 'raw',
      anyOf: [
        { type: 'string', enum: ['raw', 'normalized', 'book_5', 'book_20'] },
        { type: 'string', pattern: '^sch_', description: 'An export schema id.' },
        { ...DRAFT_BODY, description: 'An inline schema.' },
      ],
    },
    format: { type: 'string', enum: FORMATS, default: 'csv' },
    format_options: {
      type: ['object', 'null'],
      additionalProperties: false,
      properties: FORMAT_OPTIONS.properties,
      description: 'csv takes none; parquet takes `compression` and `row_group_size`.',
    },
  },
}

export const EXPORT_SCHEMAS: readonly ComponentSchema[] = [
  EXPORT_SCHEMA_COLUMN_SCHEMA,
  EXPORT_SCHEMA_SCHEMA,
  EXPORT_JOB_SCHEMA,
  EXPORT_DOWNLOAD_SCHEMA,
]
