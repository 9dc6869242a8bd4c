import { gzipSync } from 'node:zlib'
import { parquetWriteBuffer } from 'hyparquet-writer'
import type { BasicType, ColumnSource } from 'hyparquet-writer'
import type { Cell, OutputColumn } from './apply-schema.js'

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

const PARQUET_TYPES: Readonly<Record<OutputColumn['type'], BasicType>> = {
  i64: 'INT64',
  f64: 'DOUBLE',
  bool: 'BOOLEAN',
  string: 'STRING',
  // Exact decimal strings: see docs/decisions/0205-export-output-formats.md.
  decimal: 'STRING',
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
    type: PARQUET_TYPES[column.type],
    nullable: true,
    data: rows.map((row) => row[index] ?? null),
  }))
  const bytes = parquetWriteBuffer({
    columnData,
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
