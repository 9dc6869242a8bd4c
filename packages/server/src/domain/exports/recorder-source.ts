import type { StreamType } from '../catalog-seed.js'

/** The datastream a recorder source is asked about. */
export interface RecordedStream {
  readonly datastreamId: number
  readonly exchange: string
  readonly instrument: string
  readonly base: string
  readonly streamType: StreamType
}

/** One message as the recorder stored it. */
export interface RecordedMessage {
  /** When the recorder received it, nanoseconds since the epoch. */
  readonly collectionTimestampNs: bigint
  /** The message exactly as the exchange sent it (JSON text). */
  readonly raw: string
}

/**
 * Where exports read recorded data from. This server has no exchange connection; a source that
 * reads a real recording (files, ClickHouse, an object store) implements the same interface.
 */
export interface RecorderSource {
  /** The messages of `stream` collected in `[fromNs, toNs)`, oldest first. */
  messages(stream: RecordedStream, fromNs: bigint, toNs: bigint): Iterable<RecordedMessage>
  /**
   * About how many messages `messages` yields for the range, without reading them: what
   * `GET /v1/availability` reports as `rows_estimate`.
   */
  countMessages(stream: RecordedStream, fromNs: bigint, toNs: bigint): number
}

const NS_PER_SECOND = 1_000_000_000n

/** Rough prices per base asset, in whole units of the quote currency, times 10^5. */
const BASE_PRICES_E5: Readonly<Record<string, number>> = {
  BTC: 4_200_000_000,
  ETH: 250_000_000,
  SOL: 10_000_000,
  XRP: 60_000,
  BNB: 30_000_000,
  ADA: 50_000,
  DOGE: 8_000,
  AVAX: 3_500_000,
  DOT: 700_000,
  LINK: 1_500_000,
  LTC: 7_000_000,
  TRX: 11_000,
  ATOM: 900_000,
  UNI: 600_000,
  NEAR: 300_000,
  APT: 900_000,
  ARB: 120_000,
  OP: 250_000,
  FIL: 500_000,
  SUI: 110_000,
}

/** A 32-bit integer hash (murmur3's finaliser): good spread, no state, same everywhere. */
function mix(value: number): number {
  let h = value | 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** A small deterministic generator (mulberry32) seeded from the datastream and the second. */
function generator(datastreamId: number, second: number, salt = 0): () => number {
  let state = mix(mix(mix(datastreamId) ^ second) ^ Math.floor(second / 2 ** 32) ^ salt)
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return (t ^ (t >>> 14)) >>> 0
  }
}

/** `scaled / 10^decimals` as a decimal string with exactly `decimals` places (integers only). */
function decimal(scaled: number, decimals: number): string {
  const digits = Math.abs(scaled)
    .toString()
    .padStart(decimals + 1, '0')
  const sign = scaled < 0 ? '-' : ''
  if (decimals === 0) return `${sign}${digits}`
  return `${sign}${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`
}

/** Price decimals by magnitude, like exchanges' tick sizes. */
function priceDecimals(priceE5: number): number {
  if (priceE5 >= 100_000_000) return 2
  if (priceE5 >= 1_000_000) return 3
  if (priceE5 >= 100_000) return 4
  return 5
}

interface Market {
  /** Mid price, in units of 10^-5 at the tick size. */
  readonly midE5: number
  readonly tickE5: number
  readonly decimals: number
}

/**
 * The mid price at a second: a slow triangle wave of +-2 % over six hours plus a small
 * deterministic jitter, in integer arithmetic so that every platform computes the same digits.
 */
function market(stream: RecordedStream, second: number): Market {
  const baseE5 = BASE_PRICES_E5[stream.base] ?? 100_000
  const decimals = priceDecimals(baseE5)
  const tickE5 = 10 ** (5 - decimals)
  const period = 21_600
  const phase = (second + (mix(stream.datastreamId) % period)) % period
  const triangle = phase < period / 2 ? phase : period - phase // 0 .. period/2
  const swing = Math.round((baseE5 / 25) * (triangle / (period / 2) - 0.5) * 2)
  const jitter = (generator(stream.datastreamId, second, 7)() % 21) - 10
  const raw = baseE5 + swing + jitter * tickE5
  return { midE5: Math.max(tickE5, Math.round(raw / tickE5) * tickE5), tickE5, decimals }
}

function price(m: Market, e5: number, padTo = m.decimals): string {
  const ticks = Math.round(e5 / m.tickE5)
  return decimal(ticks * 10 ** (padTo - m.decimals), padTo)
}

/** A size between 0.0001 and ~2 base units, with 4 decimals (8 when padded, like Binance). */
function size(next: () => number, padTo = 4): string {
  const e4 = 1 + (next() % 20_000)
  return decimal(e4 * 10 ** (padTo - 4), padTo)
}

function hexId(next: () => number): string {
  const parts = [next(), next(), next(), next()].map((n) => n.toString(16).padStart(8, '0'))
  const hex = parts.join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`
}

function levels(
  m: Market,
  next: () => number,
  side: 'bid' | 'ask',
  count: number,
  padTo?: number,
): [string, string][] {
  const out: [string, string][] = []
  // Each level one to three ticks further from the mid than the one before.
  let offset = 0
  for (let level = 0; level < count; level++) {
    offset += m.tickE5 * (1 + (next() % 3))
    const at = side === 'bid' ? m.midE5 - offset : m.midE5 + offset
    out.push([price(m, Math.max(m.tickE5, at), padTo), size(next, padTo ?? 4)])
  }
  return out
}

/** The message one exchange sends for one event, shaped like that exchange's public feed. */
function message(stream: RecordedStream, second: number, collectedNs: bigint): unknown {
  const next = generator(stream.datastreamId, second)
  const m = market(stream, second)
  const eventMs = Number(collectedNs / 1_000_000n) - (1 + (next() % 5))
  const sequence = second * 10 + (next() % 10)
  const symbol = stream.instrument
  const isoTime = new Date(eventMs).toISOString()
  const bybit = stream.exchange.startsWith('bybit')
  switch (stream.streamType) {
    case 'trade': {
      const tradePrice = m.midE5 + ((next() % 5) - 2) * m.tickE5
      if (stream.exchange === 'binance')
        return {
          e: 'trade',
          E: eventMs,
          s: symbol,
          t: sequence,
          p: price(m, tradePrice, 8),
          q: size(next, 8),
          T: eventMs - 1,
          m: next() % 2 === 0,
          M: true,
        }
      if (stream.exchange === 'coinbase')
        return {
          type: 'match',
          trade_id: sequence,
          maker_order_id: hexId(next),
          taker_order_id: hexId(next),
          side: next() % 2 === 0 ? 'buy' : 'sell',
          size: size(next),
          price: price(m, tradePrice),
          product_id: symbol,
          sequence: sequence * 7,
          time: isoTime,
        }
      const count = 1 + (next() % 3)
      return {
        topic: `publicTrade.${symbol}`,
        type: 'snapshot',
        ts: eventMs,
        data: Array.from({ length: count }, (_, index) => ({
          T: eventMs - count + index,
          s: symbol,
          S: next() % 2 === 0 ? 'Buy' : 'Sell',
          v: size(next),
          p: price(m, tradePrice + index * m.tickE5),
          L: index === 0 ? 'PlusTick' : 'ZeroPlusTick',
          i: hexId(next),
          BT: false,
        })),
      }
    }
    case 'orderbook': {
      if (stream.exchange === 'binance')
        return {
          lastUpdateId: sequence,
          bids: levels(m, next, 'bid', 20, 8),
          asks: levels(m, next, 'ask', 20, 8),
        }
      if (stream.exchange === 'coinbase')
        return {
          type: 'snapshot',
          product_id: symbol,
          bids: levels(m, next, 'bid', 20),
          asks: levels(m, next, 'ask', 20),
        }
      return {
        topic: `orderbook.50.${symbol}`,
        type: 'snapshot',
        ts: eventMs,
        data: {
          s: symbol,
          b: levels(m, next, 'bid', 20),
          a: levels(m, next, 'ask', 20),
          u: sequence,
          seq: sequence * 3,
        },
        cts: eventMs - 2,
      }
    }
    case 'book_update': {
      const bids = levels(m, next, 'bid', 1 + (next() % 3), bybit ? undefined : 8)
      const asks = levels(m, next, 'ask', 1 + (next() % 3), bybit ? undefined : 8)
      if (stream.exchange === 'binance')
        return {
          e: 'depthUpdate',
          E: eventMs,
          s: symbol,
          U: sequence - 3,
          u: sequence,
          b: bids,
          a: asks,
        }
      if (stream.exchange === 'coinbase')
        return {
          type: 'l2update',
          product_id: symbol,
          changes: [
            ...levels(m, next, 'bid', 1 + (next() % 2)).map(([p, q]) => ['buy', p, q]),
            ...levels(m, next, 'ask', 1 + (next() % 2)).map(([p, q]) => ['sell', p, q]),
          ],
          time: isoTime,
        }
      return {
        topic: `orderbook.50.${symbol}`,
        type: 'delta',
        ts: eventMs,
        data: { s: symbol, b: bids, a: asks, u: sequence, seq: sequence * 3 },
        cts: eventMs - 2,
      }
    }
    case 'quote': {
      const [bid = ['0', '0']] = levels(m, next, 'bid', 1, 8)
      const [ask = ['0', '0']] = levels(m, next, 'ask', 1, 8)
      return { u: sequence, s: symbol, b: bid[0], B: bid[1], a: ask[0], A: ask[1] }
    }
    case 'kline': {
      const openMs = Math.floor(eventMs / 60_000) * 60_000
      const open = market(stream, Math.floor(openMs / 1000))
      const high = Math.max(open.midE5, m.midE5) + m.tickE5 * (next() % 10)
      const low = Math.min(open.midE5, m.midE5) - m.tickE5 * (next() % 10)
      const volume = size(next)
      if (stream.exchange === 'binance')
        return {
          e: 'kline',
          E: eventMs,
          s: symbol,
          k: {
            t: openMs,
            T: openMs + 59_999,
            s: symbol,
            i: '1m',
            o: price(m, open.midE5, 8),
            c: price(m, m.midE5, 8),
            h: price(m, high, 8),
            l: price(m, low, 8),
            v: volume,
            n: 1 + (next() % 500),
            x: second % 60 === 59,
            q: size(next),
          },
        }
      return {
        topic: `kline.1.${symbol}`,
        type: 'snapshot',
        ts: eventMs,
        data: [
          {
            start: openMs,
            end: openMs + 59_999,
            interval: '1',
            open: price(m, open.midE5),
            close: price(m, m.midE5),
            high: price(m, high),
            low: price(m, low),
            volume,
            turnover: size(next),
            confirm: second % 60 === 59,
            timestamp: eventMs,
          },
        ],
      }
    }
    case 'ticker': {
      const last = price(m, m.midE5)
      if (stream.exchange === 'binance')
        return {
          e: '24hrTicker',
          E: eventMs,
          s: symbol,
          c: price(m, m.midE5, 8),
          b: price(m, m.midE5 - m.tickE5, 8),
          a: price(m, m.midE5 + m.tickE5, 8),
          h: price(m, m.midE5 + 50 * m.tickE5, 8),
          l: price(m, m.midE5 - 50 * m.tickE5, 8),
          v: size(next, 8),
        }
      if (stream.exchange === 'coinbase')
        return {
          type: 'ticker',
          sequence: sequence * 7,
          product_id: symbol,
          price: last,
          best_bid: price(m, m.midE5 - m.tickE5),
          best_ask: price(m, m.midE5 + m.tickE5),
          volume_24h: size(next),
          time: isoTime,
        }
      return {
        topic: `tickers.${symbol}`,
        type: 'snapshot',
        ts: eventMs,
        data: {
          symbol,
          lastPrice: last,
          bid1Price: price(m, m.midE5 - m.tickE5),
          ask1Price: price(m, m.midE5 + m.tickE5),
          volume24h: size(next),
        },
      }
    }
    case 'liquidation':
      return {
        topic: `allLiquidation.${symbol}`,
        type: 'snapshot',
        ts: eventMs,
        data: [
          {
            T: eventMs - 3,
            s: symbol,
            S: next() % 2 === 0 ? 'Buy' : 'Sell',
            v: size(next),
            p: price(m, m.midE5),
          },
        ],
      }
  }
}

/**
 * The default source: one message per second per datastream, at a fixed, pseudo-random instant
 * within that second. Everything is derived from (datastream id, second) with an integer hash,
 * so the same datastream and time always give the same message, byte for byte.
 */
export function createSyntheticRecorderSource(): RecorderSource {
  const collectedAt = (stream: RecordedStream, second: number): bigint =>
    BigInt(second) * NS_PER_SECOND +
    BigInt(generator(stream.datastreamId, second, 1)() % 1_000_000_000)
  return {
    countMessages(stream, fromNs, toNs) {
      if (toNs <= fromNs) return 0
      const first = Number(fromNs / NS_PER_SECOND)
      const last = Number((toNs - 1n) / NS_PER_SECOND)
      // Exact, in constant time: every second in between has its one message inside the range;
      // only the first and the last second's may fall outside it.
      const inside = (second: number) => {
        const collected = collectedAt(stream, second)
        return collected >= fromNs && collected < toNs ? 1 : 0
      }
      if (first === last) return inside(first)
      return inside(first) + inside(last) + (last - first - 1)
    },
    *messages(stream, fromNs, toNs) {
      if (toNs <= fromNs) return
      const first = Number(fromNs / NS_PER_SECOND)
      const last = Number((toNs - 1n) / NS_PER_SECOND)
      for (let second = first; second <= last; second++) {
        const collected = collectedAt(stream, second)
        if (collected < fromNs || collected >= toNs) continue
        yield {
          collectionTimestampNs: collected,
          raw: JSON.stringify(message(stream, second, collected)),
        }
      }
    },
  }
}
