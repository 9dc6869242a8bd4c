import { STREAM_TYPES } from '../../domain/catalog-seed.js'
import type { ComponentSchema } from '../../http/schemas.js'
import { int64 } from '../../http/schemas.js'

export const EXCHANGE_SCHEMA = {
  $id: 'Exchange',
  type: 'object',
  required: ['code', 'display_name'],
  additionalProperties: false,
  properties: {
    code: { type: 'string', examples: ['binance'] },
    display_name: { type: 'string', examples: ['Binance'] },
  },
} as const satisfies ComponentSchema

export const INSTRUMENT_SCHEMA = {
  $id: 'Instrument',
  type: 'object',
  required: ['symbol', 'base', 'quote', 'instrument_type'],
  additionalProperties: false,
  properties: {
    symbol: { type: 'string', examples: ['BTCUSDT'] },
    base: { type: 'string', examples: ['BTC'] },
    quote: { type: 'string', examples: ['USDT'] },
    instrument_type: { type: 'string', examples: ['spot'] },
  },
} as const satisfies ComponentSchema

export const DATASTREAM_SCHEMA = {
  $id: 'Datastream',
  type: 'object',
  required: ['datastream_id', 'exchange', 'instrument', 'stream_type', 'wire_format'],
  additionalProperties: false,
  properties: {
    datastream_id: int64(1),
    exchange: { type: 'string' },
    instrument: { type: 'string' },
    stream_type: { type: 'string', enum: [...STREAM_TYPES] },
    wire_format: { type: 'string', enum: ['json'] },
  },
} as const satisfies ComponentSchema

export const CATALOG_SCHEMAS: readonly ComponentSchema[] = [
  EXCHANGE_SCHEMA,
  INSTRUMENT_SCHEMA,
  DATASTREAM_SCHEMA,
]
