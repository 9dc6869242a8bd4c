/**
 * The seeded catalog: four exchanges, their instruments and datastreams. Generated, not random,
 * so that every database gets the same datastream ids in the same order.
 */
export interface SeedExchange {
  readonly code: string
  readonly displayName: string
  readonly instrumentType: 'spot' | 'perpetual'
  readonly quotes: readonly string[]
  readonly symbol: (base: string, quote: string) => string
  readonly streamTypes: readonly StreamType[]
}

export const STREAM_TYPES = [
  'trade',
  'orderbook',
  'book_update',
  'quote',
  'kline',
  'ticker',
  'liquidation',
] as const
export type StreamType = (typeof STREAM_TYPES)[number]

/**
 * Spellings accepted on input for a stream type, beside the type itself: the public SDKs'
 * examples write `trades`. Answers, filters' results and file names use the type itself.
 */
export const STREAM_TYPE_ALIASES: Readonly<Record<string, StreamType>> = { trades: 'trade' }

/** Every spelling a request may use for a stream type or category. */
export const STREAM_TYPE_INPUTS: readonly string[] = [
  ...STREAM_TYPES,
  ...Object.keys(STREAM_TYPE_ALIASES),
]

/** The stream type a request's value names (`trades` is `trade`); undefined for no type. */
export function parseStreamType(value: unknown): StreamType | undefined {
  if (typeof value !== 'string') return undefined
  const direct = STREAM_TYPES.find((type) => type === value)
  return (
    direct ?? (Object.hasOwn(STREAM_TYPE_ALIASES, value) ? STREAM_TYPE_ALIASES[value] : undefined)
  )
}

const BASES = [
  'BTC',
  'ETH',
  'SOL',
  'XRP',
  'BNB',
  'ADA',
  'DOGE',
  'AVAX',
  'DOT',
  'LINK',
  'LTC',
  'TRX',
  'ATOM',
  'UNI',
  'NEAR',
  'APT',
  'ARB',
  'OP',
  'FIL',
  'SUI',
] as const

const concat = (base: string, quote: string) => `${base}${quote}`

export const SEED_EXCHANGES: readonly SeedExchange[] = [
  {
    code: 'binance',
    displayName: 'Binance',
    instrumentType: 'spot',
    quotes: ['USDT', 'USDC'],
    symbol: concat,
    streamTypes: ['trade', 'orderbook', 'book_update', 'quote', 'kline', 'ticker'],
  },
  {
    code: 'coinbase',
    displayName: 'Coinbase',
    instrumentType: 'spot',
    quotes: ['USD'],
    symbol: (base, quote) => `${base}-${quote}`,
    streamTypes: ['trade', 'orderbook', 'book_update', 'ticker'],
  },
  {
    code: 'bybit_spot',
    displayName: 'Bybit Spot',
    instrumentType: 'spot',
    quotes: ['USDT'],
    symbol: concat,
    streamTypes: ['trade', 'orderbook', 'book_update', 'kline', 'ticker'],
  },
  {
    code: 'bybit_linear',
    displayName: 'Bybit Linear',
    instrumentType: 'perpetual',
    quotes: ['USDT'],
    symbol: concat,
    streamTypes: ['trade', 'orderbook', 'book_update', 'kline', 'ticker', 'liquidation'],
  },
]

export interface SeedInstrument {
  readonly exchange: string
  readonly symbol: string
  readonly base: string
  readonly quote: string
  readonly instrumentType: string
}

export interface SeedDatastream {
  readonly id: number
  readonly exchange: string
  readonly instrument: string
  readonly streamType: StreamType
}

export function seedInstruments(): SeedInstrument[] {
  return SEED_EXCHANGES.flatMap((exchange) =>
    exchange.quotes.flatMap((quote) =>
      BASES.map((base) => ({
        exchange: exchange.code,
        symbol: exchange.symbol(base, quote),
        base,
        quote,
        instrumentType: exchange.instrumentType,
      })),
    ),
  )
}

/** Ids count up from 1 in (exchange, quote, base, stream type) order. */
export function seedDatastreams(): SeedDatastream[] {
  const streams: SeedDatastream[] = []
  for (const instrument of seedInstruments()) {
    const exchange = SEED_EXCHANGES.find((candidate) => candidate.code === instrument.exchange)
    for (const streamType of exchange?.streamTypes ?? []) {
      streams.push({
        id: streams.length + 1,
        exchange: instrument.exchange,
        instrument: instrument.symbol,
        streamType,
      })
    }
  }
  return streams
}
