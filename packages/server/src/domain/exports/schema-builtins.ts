import type { StreamType } from '../catalog-seed.js'
import type { DataRule, DeriveRule, SchemaColumn, SchemaDefinition } from './schema-definition.js'

/** A built-in schema: read-only, the same for every account. */
export interface BuiltInSchema {
  readonly id: string
  readonly name: 'normalized' | 'book_5' | 'book_20'
  readonly streamCategory: StreamType
  readonly definition: SchemaDefinition
}

/** The reserved name of the default schema: never listed, never stored. */
export const RAW_SCHEMA_NAME = 'raw'

/** Built-ins were "created" with the API; a fixed date keeps their JSON stable. */
export const BUILT_IN_CREATED_AT_MS = Date.UTC(2024, 0, 1)

const TIMESTAMP: SchemaColumn = {
  output_column: 'collection_timestamp_ns',
  meta: { value: 'collection_timestamp_ns', format: 'ns' },
}

type Rule = readonly [path: string, type: string, transform?: string]

function column(name: string, rules: Readonly<Record<string, Rule>>): SchemaColumn {
  const data: Record<string, DataRule> = {}
  for (const [exchange, [path, type, transform]] of Object.entries(rules))
    data[exchange] =
      transform === undefined ? { json: { path, type } } : { json: { path, type }, transform }
  return { output_column: name, data }
}

const BYBIT = ['bybit_spot', 'bybit_linear'] as const
const ALL = ['binance', 'coinbase', ...BYBIT] as const

function each(exchanges: readonly string[], rule: Rule): Record<string, Rule> {
  return Object.fromEntries(exchanges.map((exchange) => [exchange, rule]))
}

function unfoldAt(exchanges: readonly string[], path: string): Record<string, { path: string }> {
  return Object.fromEntries(exchanges.map((exchange) => [exchange, { path }]))
}

/** Bids and asks merged into one list of tagged levels, for one row per level. */
function levelsFrom(bids: string, asks: string): DeriveRule[] {
  return [
    {
      field: 'levels',
      concat: [
        { path: bids, tag: 'bid' },
        { path: asks, tag: 'ask' },
      ],
    },
  ]
}

const BUY_SELL_FROM_BYBIT = `CASE WHEN {v} = 'Buy' THEN 'buy' ELSE 'sell' END`

const NORMALIZED: Partial<Record<StreamType, SchemaDefinition>> = {
  trade: {
    columns: [
      TIMESTAMP,
      column('exchange_timestamp_ms', { binance: ['T', 'i64'], ...each(BYBIT, ['T', 'i64']) }),
      column('trade_id', {
        binance: ['t', 'string'],
        coinbase: ['trade_id', 'string'],
        ...each(BYBIT, ['i', 'string']),
      }),
      column('price', {
        binance: ['p', 'decimal(8)'],
        coinbase: ['price', 'decimal(8)'],
        ...each(BYBIT, ['p', 'decimal(8)']),
      }),
      column('quantity', {
        binance: ['q', 'decimal(8)'],
        coinbase: ['size', 'decimal(8)'],
        ...each(BYBIT, ['v', 'decimal(8)']),
      }),
      // The taker's side: Binance's m is "the buyer is the maker"; Coinbase names the maker's side.
      column('side', {
        binance: ['m', 'bool', `CASE WHEN {v} THEN 'sell' ELSE 'buy' END`],
        coinbase: ['side', 'string', `CASE WHEN {v} = 'buy' THEN 'sell' ELSE 'buy' END`],
        ...each(BYBIT, ['S', 'string', BUY_SELL_FROM_BYBIT]),
      }),
    ],
    unfold: unfoldAt(BYBIT, 'data'),
  },
  orderbook: {
    columns: [
      TIMESTAMP,
      column('side', each(ALL, ['tag', 'string'])),
      column('level', each(ALL, ['index', 'i64'])),
      column('price', each(ALL, ['value.0', 'decimal(8)'])),
      column('size', each(ALL, ['value.1', 'decimal(8)'])),
    ],
    unfold: unfoldAt(ALL, 'levels'),
    derive: {
      binance: levelsFrom('bids', 'asks'),
      coinbase: levelsFrom('bids', 'asks'),
      bybit_spot: levelsFrom('data.b', 'data.a'),
      bybit_linear: levelsFrom('data.b', 'data.a'),
    },
  },
  book_update: {
    columns: [
      TIMESTAMP,
      column('side', {
        binance: ['tag', 'string'],
        coinbase: ['0', 'string', `CASE WHEN {v} = 'buy' THEN 'bid' ELSE 'ask' END`],
        ...each(BYBIT, ['tag', 'string']),
      }),
      column('price', {
        binance: ['value.0', 'decimal(8)'],
        coinbase: ['1', 'decimal(8)'],
        ...each(BYBIT, ['value.0', 'decimal(8)']),
      }),
      column('size', {
        binance: ['value.1', 'decimal(8)'],
        coinbase: ['2', 'decimal(8)'],
        ...each(BYBIT, ['value.1', 'decimal(8)']),
      }),
    ],
    unfold: { ...unfoldAt(['binance', ...BYBIT], 'levels'), coinbase: { path: 'changes' } },
    derive: {
      binance: levelsFrom('b', 'a'),
      bybit_spot: levelsFrom('data.b', 'data.a'),
      bybit_linear: levelsFrom('data.b', 'data.a'),
    },
  },
  quote: {
    columns: [
      TIMESTAMP,
      column('bid_price', { binance: ['b', 'decimal(8)'] }),
      column('bid_size', { binance: ['B', 'decimal(8)'] }),
      column('ask_price', { binance: ['a', 'decimal(8)'] }),
      column('ask_size', { binance: ['A', 'decimal(8)'] }),
    ],
  },
  kline: {
    columns: [
      TIMESTAMP,
      column('open_time_ms', { binance: ['k.t', 'i64'], ...each(BYBIT, ['start', 'i64']) }),
      column('open', { binance: ['k.o', 'decimal(8)'], ...each(BYBIT, ['open', 'decimal(8)']) }),
      column('high', { binance: ['k.h', 'decimal(8)'], ...each(BYBIT, ['high', 'decimal(8)']) }),
      column('low', { binance: ['k.l', 'decimal(8)'], ...each(BYBIT, ['low', 'decimal(8)']) }),
      column('close', { binance: ['k.c', 'decimal(8)'], ...each(BYBIT, ['close', 'decimal(8)']) }),
      column('volume', {
        binance: ['k.v', 'decimal(8)'],
        ...each(BYBIT, ['volume', 'decimal(8)']),
      }),
      column('closed', { binance: ['k.x', 'bool'], ...each(BYBIT, ['confirm', 'bool']) }),
    ],
    unfold: unfoldAt(BYBIT, 'data'),
  },
  liquidation: {
    columns: [
      TIMESTAMP,
      column('exchange_timestamp_ms', { bybit_linear: ['T', 'i64'] }),
      column('side', { bybit_linear: ['S', 'string', BUY_SELL_FROM_BYBIT] }),
      column('price', { bybit_linear: ['p', 'decimal(8)'] }),
      column('quantity', { bybit_linear: ['v', 'decimal(8)'] }),
    ],
    unfold: { bybit_linear: { path: 'data' } },
  },
}

/** Top-of-book snapshots: price and size of the best `depth` bids and asks, one row a message. */
function book(depth: number): SchemaDefinition {
  const columns: SchemaColumn[] = [TIMESTAMP]
  for (let level = 0; level < depth; level++) {
    const n = String(level + 1)
    const at = (side: 'bids' | 'asks', field: 0 | 1): Record<string, Rule> => ({
      binance: [`${side}.${String(level)}.${String(field)}`, 'decimal(8)'],
      coinbase: [`${side}.${String(level)}.${String(field)}`, 'decimal(8)'],
      ...each(BYBIT, [`data.${side.charAt(0)}.${String(level)}.${String(field)}`, 'decimal(8)']),
    })
    columns.push(
      column(`bid_price_${n}`, at('bids', 0)),
      column(`bid_size_${n}`, at('bids', 1)),
      column(`ask_price_${n}`, at('asks', 0)),
      column(`ask_size_${n}`, at('asks', 1)),
    )
  }
  return { columns }
}

const builtInId = (n: number) => `sch_${n.toString(16).padStart(32, '0')}`

/** Every built-in, in the order the list shows them. */
export const BUILT_IN_SCHEMAS: readonly BuiltInSchema[] = [
  ...Object.entries(NORMALIZED).map(([category, definition], index) => ({
    id: builtInId(index + 1),
    name: 'normalized' as const,
    streamCategory: category as StreamType,
    definition,
  })),
  { id: builtInId(0x101), name: 'book_5', streamCategory: 'orderbook', definition: book(5) },
  { id: builtInId(0x102), name: 'book_20', streamCategory: 'orderbook', definition: book(20) },
]

export function findBuiltInById(id: string): BuiltInSchema | undefined {
  return BUILT_IN_SCHEMAS.find((schema) => schema.id === id)
}

export function findBuiltInByName(name: string, category: StreamType): BuiltInSchema | undefined {
  return BUILT_IN_SCHEMAS.find(
    (schema) => schema.name === name && schema.streamCategory === category,
  )
}

export function isBuiltInName(name: string): boolean {
  return name === RAW_SCHEMA_NAME || BUILT_IN_SCHEMAS.some((schema) => schema.name === name)
}
