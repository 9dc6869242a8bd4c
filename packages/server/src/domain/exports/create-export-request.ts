import { ApiError } from '../api-error.js'
import { datastreamIdOf } from '../datastream-id.js'
import { parseNsTime } from '../ns-time.js'
import type { ExportFormat, FormatOptions } from './export-writers.js'
import type { SchemaDefinition } from './schema-definition.js'
import { parseDraftBody } from './schema-definition.js'

/** A validated `POST /v1/exports` body. */
export interface CreateExportRequest {
  readonly datastreamId: bigint
  readonly startNs: bigint
  readonly endNs: bigint
  readonly schema: string | SchemaDefinition
  readonly format: ExportFormat
  readonly formatOptions: FormatOptions
}

export const PARQUET_DEFAULTS = { compression: 'snappy', row_group_size: 100_000 } as const

function invalid(message: string): ApiError {
  return new ApiError('invalid_argument', message)
}

function parseFormatOptions(format: ExportFormat, value: unknown): FormatOptions {
  if (value === undefined || value === null) return format === 'csv' ? {} : { ...PARQUET_DEFAULTS }
  if (typeof value !== 'object' || Array.isArray(value))
    throw invalid('format_options must be an object')
  const options = value as Record<string, unknown>
  const allowed = format === 'csv' ? [] : ['compression', 'row_group_size']
  for (const key of Object.keys(options))
    if (!allowed.includes(key))
      throw invalid(
        `format_options: unknown key "${key}" for format ${format}${allowed.length === 0 ? ' (csv takes none)' : ` (allowed: ${allowed.join(', ')})`}`,
      )
  if (format === 'csv') return {}
  const compression = options['compression'] ?? PARQUET_DEFAULTS.compression
  if (compression !== 'snappy' && compression !== 'gzip' && compression !== 'none')
    throw invalid('format_options.compression must be one of snappy, gzip, none')
  const rowGroupSize = options['row_group_size'] ?? PARQUET_DEFAULTS.row_group_size
  if (
    typeof rowGroupSize !== 'number' ||
    !Number.isInteger(rowGroupSize) ||
    rowGroupSize < 1 ||
    rowGroupSize > 1_000_000
  )
    throw invalid('format_options.row_group_size must be an integer from 1 to 1000000')
  return { compression, row_group_size: rowGroupSize }
}

const BUILT_IN_NAMES = ['raw', 'normalized', 'book_5', 'book_20']

/** Validates the body before the idempotency key is claimed: a fixed request may reuse its key. */
export function parseCreateExportBody(body: unknown): CreateExportRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw invalid('The body must be a JSON object')
  const object = body as Record<string, unknown>
  const allowed = ['datastream_id', 'start_time', 'end_time', 'schema', 'format', 'format_options']
  for (const key of Object.keys(object))
    if (!allowed.includes(key))
      throw invalid(`The body: unknown field "${key}" (allowed: ${allowed.join(', ')})`)
  const datastreamId = datastreamIdOf(object['datastream_id'])
  if (datastreamId === undefined)
    throw invalid('datastream_id must be a positive integer (an int64)')
  if (object['start_time'] === undefined) throw invalid('start_time is required')
  if (object['end_time'] === undefined) throw invalid('end_time is required')
  const startNs = parseNsTime('start_time', object['start_time'])
  const endNs = parseNsTime('end_time', object['end_time'])
  if (endNs <= startNs) throw invalid('end_time must be after start_time')
  const format = object['format'] ?? 'csv'
  if (format !== 'csv' && format !== 'parquet') throw invalid('format must be csv or parquet')
  const schemaValue = object['schema'] ?? 'raw'
  let schema: string | SchemaDefinition
  if (typeof schemaValue === 'string') {
    if (!BUILT_IN_NAMES.includes(schemaValue) && !schemaValue.startsWith('sch_'))
      throw invalid(
        `schema must be "raw", a built-in name (normalized, book_5, book_20), a schema id (sch_...) or an object with columns; got "${schemaValue}"`,
      )
    schema = schemaValue
  } else if (typeof schemaValue === 'object' && !Array.isArray(schemaValue)) {
    schema = parseDraftBody(schemaValue)
  } else throw invalid('schema must be a string or an object with columns')
  return {
    datastreamId,
    startNs,
    endNs,
    schema,
    format,
    formatOptions: parseFormatOptions(format, object['format_options']),
  }
}
