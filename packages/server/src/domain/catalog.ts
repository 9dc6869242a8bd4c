import type { Queryable, SqlValue } from '../db/database.js'
import { ApiError } from './api-error.js'
import { SEED_EXCHANGES, seedDatastreams, seedInstruments } from './catalog-seed.js'
import type { StreamType } from './catalog-seed.js'
import type { Page } from './page.js'
import { page } from './page.js'

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

export interface Datastream {
  readonly datastream_id: number
  readonly exchange: string
  readonly instrument: string
  readonly stream_type: StreamType
  readonly wire_format: 'json'
}

/** Inserts the catalog once; later starts find it and leave it alone. */
export async function seedCatalog(tx: Queryable): Promise<void> {
  const existing = await tx.get<{ n: number | string }>('SELECT COUNT(*) AS n FROM exchanges')
  if (Number(existing?.n ?? 0) > 0) return
  for (const [position, exchange] of SEED_EXCHANGES.entries()) {
    await tx.run('INSERT INTO exchanges (code, display_name, position) VALUES (?, ?, ?)', [
      exchange.code,
      exchange.displayName,
      position,
    ])
  }
  for (const instrument of seedInstruments()) {
    await tx.run(
      'INSERT INTO instruments (exchange, symbol, base, quote, instrument_type) VALUES (?, ?, ?, ?, ?)',
      [
        instrument.exchange,
        instrument.symbol,
        instrument.base,
        instrument.quote,
        instrument.instrumentType,
      ],
    )
  }
  for (const stream of seedDatastreams()) {
    await tx.run(
      `INSERT INTO datastreams (id, exchange, instrument, stream_type, wire_format) VALUES (?, ?, ?, ?, 'json')`,
      [stream.id, stream.exchange, stream.instrument, stream.streamType],
    )
  }
}

export async function listExchanges(db: Queryable): Promise<Exchange[]> {
  return db.all<Exchange>('SELECT code, display_name FROM exchanges ORDER BY position')
}

async function exchangeExists(db: Queryable, code: string): Promise<boolean> {
  return (await db.get('SELECT 1 AS found FROM exchanges WHERE code = ?', [code])) !== undefined
}

/** Instruments of one exchange by symbol; `search` is a case-insensitive symbol prefix. */
export async function listInstruments(
  db: Queryable,
  query: { exchange: string; search: string | undefined; limit: number; after: string | undefined },
): Promise<Page<Instrument>> {
  if (!(await exchangeExists(db, query.exchange))) {
    throw new ApiError('not_found', `Exchange ${query.exchange} not found`)
  }
  const where = ['exchange = ?']
  const params: SqlValue[] = [query.exchange]
  if (query.search !== undefined && query.search !== '') {
    where.push(`UPPER(symbol) LIKE ? ESCAPE '\\'`)
    params.push(`${escapeLike(query.search.toUpperCase())}%`)
  }
  const total = await count(db, 'instruments', where, params)
  const pageWhere = query.after === undefined ? where : [...where, 'symbol > ?']
  const pageParams = query.after === undefined ? params : [...params, query.after]
  const rows = await db.all<Instrument>(
    `SELECT symbol, base, quote, instrument_type FROM instruments
      WHERE ${pageWhere.join(' AND ')} ORDER BY symbol LIMIT ?`,
    [...pageParams, query.limit + 1],
  )
  return page(rows, query.limit, total, (row) => row.symbol)
}

export async function listDatastreams(
  db: Queryable,
  query: {
    exchange: string | undefined
    instrument: string | undefined
    streamType: string | undefined
    limit: number
    after: number | undefined
  },
): Promise<Page<Datastream>> {
  const where: string[] = []
  const params: SqlValue[] = []
  for (const [column, value] of [
    ['exchange', query.exchange],
    ['instrument', query.instrument],
    ['stream_type', query.streamType],
  ] as const) {
    if (value !== undefined) {
      where.push(`${column} = ?`)
      params.push(value)
    }
  }
  const total = await count(db, 'datastreams', where, params)
  const pageWhere = query.after === undefined ? where : [...where, 'id > ?']
  const pageParams = query.after === undefined ? params : [...params, query.after]
  const rows = await db.all<DatastreamRow>(
    `SELECT id, exchange, instrument, stream_type FROM datastreams
      ${pageWhere.length > 0 ? `WHERE ${pageWhere.join(' AND ')}` : ''} ORDER BY id LIMIT ?`,
    [...pageParams, query.limit + 1],
  )
  return page(rows.map(toDatastream), query.limit, total, (row) => row.datastream_id)
}

interface DatastreamRow {
  id: number | string
  exchange: string
  instrument: string
  stream_type: StreamType
}

export function toDatastream(row: DatastreamRow): Datastream {
  return {
    datastream_id: Number(row.id),
    exchange: row.exchange,
    instrument: row.instrument,
    stream_type: row.stream_type,
    wire_format: 'json',
  }
}

export async function findDatastream(db: Queryable, id: number): Promise<Datastream | undefined> {
  const row = await db.get<DatastreamRow>(
    'SELECT id, exchange, instrument, stream_type FROM datastreams WHERE id = ?',
    [id],
  )
  return row && toDatastream(row)
}

async function count(
  db: Queryable,
  table: string,
  where: string[],
  params: SqlValue[],
): Promise<number> {
  const row = await db.get<{ n: number | string }>(
    `SELECT COUNT(*) AS n FROM ${table} ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}`,
    params,
  )
  return Number(row?.n ?? 0)
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (char) => `\\${char}`)
}
