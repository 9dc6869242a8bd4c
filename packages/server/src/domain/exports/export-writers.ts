import { gzipSync } from 'node:zlib'
import type { SchemaElement } from 'hyparquet'
import { parquetWriteBuffer } from 'hyparquet-writer'
import type { ColumnSource } from 'hyparquet-writer'
import type { Cell, OutputColumn } from './apply-schema.js'
import { DECIMAL_PRECISION } from './apply-schema.js'

export type ExportFormat = 'csv' | 'parquet'

/** The resolved `format_options`: `{}` for CSV; compression and row group size for Parquet. */
export type FormatOptions =
  | Record<string, never>
  | { readonly compression: ParquetCompression; readonly row_group_size: number }

export type ParquetCompression = 'snappy' | 'gzip' | 'none'

function csvField(cell: Cell): string {
  if (cell === null) return ''
  const text = typeof cell === 'string' ? cell : String(cell)
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text
}

/**
 * A gzip-compressed CSV file with a header row (RFC 4180 quoting; null is an empty field).
 * gzip here writes no file name and a zero mtime, so equal rows give equal bytes.
 */
export function writeCsvGz(columns: readonly OutputColumn[], rows: readonly Cell[][]): Buffer {
  const lines = [columns.map((column) => csvField(column.name)).join(',')]
  for (const row of rows) lines.push(row.map(csvField).join(','))
  return gzipSync(`${lines.join('\n')}\n`, { level: 6 })
}

/**
 * The Parquet column of an output column, every one nullable (OPTIONAL): `i64` INT64, `f64`
 * DOUBLE, `bool` BOOLEAN, `string` UTF-8 BYTE_ARRAY, `timestamp` INT64 TIMESTAMP(unit, UTC),
 * `decimal` DECIMAL(38, N) in a 16-byte FIXED_LEN_BYTE_ARRAY (see
 * docs/decisions/0208-parquet-types.md).
 */
function parquetElement(column: OutputColumn): SchemaElement {
  const base = { name: column.name, repetition_type: 'OPTIONAL' } as const
  switch (column.type) {
    case 'i64':
      return { ...base, type: 'INT64' }
    case 'f64':
      return { ...base, type: 'DOUBLE' }
    case 'bool':
      return { ...base, type: 'BOOLEAN' }
    case 'string':
      return {
        ...base,
        type: 'BYTE_ARRAY',
        converted_type: 'UTF8',
        logical_type: { type: 'STRING' },
      }
    case 'timestamp': {
      const unit = column.unit ?? 'NANOS'
      return {
        ...base,
        type: 'INT64',
        // The legacy converted type too, for readers that predate logical types; NANOS has none.
        ...(unit === 'NANOS' ? {} : { converted_type: `TIMESTAMP_${unit}` as const }),
        logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit },
      }
    }
    case 'decimal': {
      const scale = column.scale ?? 0
      return {
        ...base,
        type: 'FIXED_LEN_BYTE_ARRAY',
        type_length: 16,
        converted_type: 'DECIMAL',
        precision: DECIMAL_PRECISION,
        scale,
        logical_type: { type: 'DECIMAL', precision: DECIMAL_PRECISION, scale },
      }
    }
  }
}

/** A decimal cell's exact text as the unscaled integer DECIMAL(38, scale) stores. */
function unscaledDecimal(text: string, scale: number): bigint {
  const negative = text.startsWith('-')
  const [whole = '0', fraction = ''] = (negative ? text.slice(1) : text).split('.')
  const unscaled = BigInt(whole + fraction.padEnd(scale, '0'))
  return negative ? -unscaled : unscaled
}

function parquetValue(column: OutputColumn, cell: Cell): unknown {
  if (cell === null) return null
  if (column.type === 'decimal' && typeof cell === 'string')
    return unscaledDecimal(cell, column.scale ?? 0)
  return cell
}

const PARQUET_CODECS = { snappy: 'SNAPPY', gzip: 'GZIP', none: 'UNCOMPRESSED' } as const

/** A Parquet file, one column chunk per output column, nullable columns throughout. */
export function writeParquet(
  columns: readonly OutputColumn[],
  rows: readonly Cell[][],
  options: { readonly compression: ParquetCompression; readonly row_group_size: number },
): Buffer {
  const columnData: ColumnSource[] = columns.map((column, index) => ({
    name: column.name,
    data: rows.map((row) => parquetValue(column, row[index] ?? null)),
  }))
  const bytes = parquetWriteBuffer({
    columnData,
    schema: [{ name: 'root', num_children: columns.length }, ...columns.map(parquetElement)],
    codec: PARQUET_CODECS[options.compression],
    compressors: { GZIP: (input) => gzipSync(input) },
    rowGroupSize: options.row_group_size,
    createdBy: 'ticksupply',
  })
  return Buffer.from(bytes)
}

export function fileExtension(format: ExportFormat): string {
  return format === 'csv' ? 'csv.gz' : 'parquet'
}
