/**
 * Parquet exports keep their types, as read by an independent reader (DuckDB): `decimal(N)` is
 * DECIMAL(38, N), nanosecond (and micro-, millisecond) timestamps are TIMESTAMP in UTC,
 * integers INT64, booleans BOOLEAN. Transform arithmetic on `decimal(N)` values is exact: the
 * values equal exact arithmetic on the CSV export of the same rows.
 *
 * DuckDB reads a UTC TIMESTAMP(NANOS) as its TIMESTAMP WITH TIME ZONE, which holds microseconds;
 * the nanoseconds themselves are read back with hyparquet, a second independent reader.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DuckDBConnection } from '@duckdb/node-api'
import { DuckDBDecimalValue, DuckDBInstance } from '@duckdb/node-api'
import { parquetReadObjects } from 'hyparquet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from './support/server.js'
import { startServer } from './support/server.js'
import type { ExportJob } from './support/exports-helpers.js'
import {
  EXPORT_ENV,
  createExport,
  datastreamOf,
  fetchArtifacts,
  ns,
  parseCsvGz,
  recordSpan,
  waitForExport,
} from './support/exports-helpers.js'

const meta = (name: string, format: string) => ({
  output_column: name,
  meta: { value: 'collection_timestamp_ns', format },
})
const data = (name: string, path: string, type: string, transform?: string) => ({
  output_column: name,
  data: { binance: { json: { path, type }, ...(transform === undefined ? {} : { transform }) } },
})

const SCHEMA = {
  columns: [
    meta('ts', 'ns'),
    meta('ts_us', 'us'),
    meta('ts_ms', 'ms'),
    meta('ts_s', 's'),
    meta('ts_iso', 'iso8601'),
    data('price', 'p', 'decimal(8)'),
    data('qty', 'q', 'decimal(8)'),
    data('price_e12', 'p', 'decimal(8)', '{v} * 1000000000000 + 0.1'),
    data('third', 'p', 'decimal(8)', '{v} / 3'),
    // 0.1 + 0.2 = 0.3 holds only in exact arithmetic; in binary floating point it is false.
    data('exact_or_zero', 'p', 'decimal(8)', 'CASE WHEN 0.1 + 0.2 = 0.3 THEN {v} * 1 ELSE 0 END'),
    data('trade_id', 't', 'i64'),
    data('buyer_is_maker', 'm', 'bool'),
    data('price_f64', 'p', 'f64'),
    data('side', 'm', 'bool', "CASE WHEN {v} THEN 'sell' ELSE 'buy' END"),
  ],
}

let server: TestServer
let scratch: string
let duck: DuckDBConnection
let parquetFile: string
let csvRows: Record<string, string>[]

beforeAll(async () => {
  server = await startServer(EXPORT_ENV)
  scratch = mkdtempSync(join(tmpdir(), 'ticksupply-parquet-'))
  const { url } = server
  const datastreamId = await datastreamOf(url, 'binance', 'BTCUSDT', 'trade')
  const span = await recordSpan(url, datastreamId, 3_100)
  const range = { start_time: ns(span.startMs - 1_000), end_time: ns(span.endMs + 1_000) }
  const exportAs = async (format: string) => {
    const created = await createExport(url, {
      datastream_id: datastreamId,
      ...range,
      schema: SCHEMA,
      format,
    })
    expect(created.status, created.text).toBe(202)
    const job = await waitForExport(url, created.json<ExportJob>().id)
    expect(job.status, job.reason).toBe('succeeded')
    const { files } = await fetchArtifacts(url, job.id)
    return files
  }
  const parquet = await exportAs('parquet')
  const csv = await exportAs('csv')
  // The span is a few seconds: one hour, one file of each.
  expect(parquet).toHaveLength(1)
  expect(csv).toHaveLength(1)
  parquetFile = join(scratch, parquet[0]!.filename)
  writeFileSync(parquetFile, parquet[0]!.bytes)
  const [header = [], ...rows] = parseCsvGz(csv[0]!.bytes)
  csvRows = rows.map((row) => Object.fromEntries(header.map((name, i) => [name, row[i] ?? ''])))
  expect(csvRows.length).toBeGreaterThanOrEqual(2)
  duck = await (await DuckDBInstance.create(':memory:')).connect()
})
afterAll(async () => {
  duck.closeSync()
  await server.close()
  rmSync(scratch, { recursive: true, force: true })
})

const file = () => `read_parquet('${parquetFile.replaceAll("'", "''")}')`

/** `12.5` at scale 8 as its unscaled integer, exactly. */
function unscaled(text: string, scale: number): bigint {
  const negative = text.startsWith('-')
  const [whole = '0', fraction = ''] = (negative ? text.slice(1) : text).split('.')
  const value = BigInt(whole + fraction.padEnd(scale, '0'))
  return negative ? -value : value
}

describe('a Parquet export, read by DuckDB', () => {
  it('has the columns typed: DECIMAL, TIMESTAMP in UTC, BIGINT, BOOLEAN, DOUBLE, VARCHAR', async () => {
    const reader = await duck.runAndReadAll(`DESCRIBE SELECT * FROM ${file()}`)
    const types = Object.fromEntries(
      reader.getRowObjects().map((row) => [String(row['column_name']), String(row['column_type'])]),
    )
    expect(types).toEqual({
      ts: 'TIMESTAMP WITH TIME ZONE',
      ts_us: 'TIMESTAMP WITH TIME ZONE',
      ts_ms: 'TIMESTAMP WITH TIME ZONE',
      ts_s: 'BIGINT',
      ts_iso: 'VARCHAR',
      price: 'DECIMAL(38,8)',
      qty: 'DECIMAL(38,8)',
      price_e12: 'DECIMAL(38,8)',
      third: 'DECIMAL(38,8)',
      exact_or_zero: 'DECIMAL(38,8)',
      trade_id: 'BIGINT',
      buyer_is_maker: 'BOOLEAN',
      price_f64: 'DOUBLE',
      side: 'VARCHAR',
    })
  })

  it('stores the timestamps in nanoseconds (and micro-, milliseconds) of UTC, exactly', async () => {
    const parquetMeta = await duck.runAndReadAll(
      `SELECT name, type, logical_type FROM parquet_schema('${parquetFile}') WHERE name LIKE 'ts%'`,
    )
    const logical = Object.fromEntries(
      parquetMeta.getRowObjects().map((row) => [String(row['name']), String(row['logical_type'])]),
    )
    expect(logical['ts']).toMatch(
      /isAdjustedToUTC=(1|true).*NANOS|NANOS.*isAdjustedToUTC=(1|true)/i,
    )
    expect(logical['ts_us']).toMatch(/MICROS/)
    expect(logical['ts_ms']).toMatch(/MILLIS/)
    const rows = (
      await duck.runAndReadAll(
        `SELECT epoch_us(ts) AS ts, epoch_us(ts_us) AS us, epoch_ms(ts_ms) AS ms, ts_s FROM ${file()}`,
      )
    ).getRowObjects()
    const micros = (nanos: string | undefined) => String(BigInt(nanos ?? '0') / 1000n)
    expect(rows.map((row) => String(row['ts']))).toEqual(csvRows.map((row) => micros(row['ts'])))
    expect(rows.map((row) => String(row['us']))).toEqual(csvRows.map((row) => row['ts_us']))
    expect(rows.map((row) => String(row['ms']))).toEqual(csvRows.map((row) => row['ts_ms']))
    expect(rows.map((row) => String(row['ts_s']))).toEqual(csvRows.map((row) => row['ts_s']))
    // The nanoseconds, past what a double holds, read raw with hyparquet.
    const bytes = readFileSync(parquetFile)
    const raw = await parquetReadObjects({
      file: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
      columns: ['ts'],
      parsers: { timestampFromNanoseconds: (nanos: bigint) => nanos },
    })
    expect(raw.map((row) => String(row['ts']))).toEqual(csvRows.map((row) => row['ts']))
  })

  it('holds the decimals exactly, equal to the CSV text of the same rows', async () => {
    const rows = (
      await duck.runAndReadAll(`SELECT price, qty, trade_id, buyer_is_maker, side FROM ${file()}`)
    ).getRowObjects()
    expect(rows).toHaveLength(csvRows.length)
    for (const [index, row] of rows.entries()) {
      const csv = csvRows[index]!
      expect(row['price']).toBeInstanceOf(DuckDBDecimalValue)
      expect((row['price'] as DuckDBDecimalValue).value).toBe(unscaled(csv['price']!, 8))
      expect((row['qty'] as DuckDBDecimalValue).value).toBe(unscaled(csv['qty']!, 8))
      expect(String(row['trade_id'])).toBe(csv['trade_id'])
      expect(String(row['buyer_is_maker'])).toBe(csv['buyer_is_maker'])
      expect(row['side']).toBe(csv['side'])
    }
  })

  it('computes transforms on decimal(N) exactly, in CSV and Parquet alike', async () => {
    const rows = (
      await duck.runAndReadAll(`SELECT price_e12, third, exact_or_zero FROM ${file()}`)
    ).getRowObjects()
    for (const [index, row] of rows.entries()) {
      const csv = csvRows[index]!
      const price = unscaled(csv['price']!, 8)
      // {v} * 10^12 + 0.1, at scale 8: exact integer arithmetic on the unscaled price.
      const e12 = price * 1_000_000_000_000n + 10_000_000n
      expect(unscaled(csv['price_e12']!, 8), csv['price']).toBe(e12)
      expect((row['price_e12'] as DuckDBDecimalValue).value).toBe(e12)
      // {v} / 3, rounded half away from zero to 8 places.
      const third = (price * 2n + 3n) / 6n
      expect(unscaled(csv['third']!, 8), csv['price']).toBe(third)
      expect((row['third'] as DuckDBDecimalValue).value).toBe(third)
      // Exact comparison: 0.1 + 0.2 = 0.3 held, so the column is the price itself.
      expect(csv['exact_or_zero']).toBe(csv['price'])
      expect((row['exact_or_zero'] as DuckDBDecimalValue).value).toBe(price)
    }
  })
})
