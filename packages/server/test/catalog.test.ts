/** The seeded, read-only catalog of shared/spec/api.md: exchanges, instruments, datastreams. */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Answer, PageOf, TestServer } from './support/server.js'
import { errorOf, send, startServer } from './support/server.js'

vi.setConfig({ testTimeout: 30_000, hookTimeout: 30_000 })

interface Instrument {
  symbol: string
  base: string
  quote: string
  instrument_type: string
}

interface Datastream {
  datastream_id: number
  exchange: string
  instrument: string
  stream_type: string
  wire_format: string
}

const STREAM_TYPES = [
  'trade',
  'orderbook',
  'book_update',
  'quote',
  'kline',
  'ticker',
  'liquidation',
]

describe('the catalog', () => {
  let server: TestServer
  let url: string

  beforeAll(async () => {
    server = await startServer()
    url = server.url
  })
  afterAll(async () => {
    await server.close()
  })

  async function ok(path: string): Promise<Answer> {
    const answer = await send(`${url}${path}`)
    expect(answer.status, `${path}: ${answer.text}`).toBe(200)
    return answer
  }

  /** Walks every page of a paged list; each page's total is checked against the first. */
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the item type of the list
  async function walk<T>(
    path: string,
    limit: number,
  ): Promise<{ items: T[]; total: number; pages: number }> {
    const items: T[] = []
    const separator = path.includes('?') ? '&' : '?'
    let token: string | null = null
    let total: number | undefined
    for (let pages = 1; pages <= 1000; pages++) {
      const result: PageOf<T> = (
        await ok(
          `${path}${separator}limit=${String(limit)}${token === null ? '' : `&page_token=${token}`}`,
        )
      ).json<PageOf<T>>()
      expect(result.limit).toBe(limit)
      expect(result.items.length).toBeLessThanOrEqual(limit)
      total ??= result.total
      expect(result.total).toBe(total)
      items.push(...result.items)
      token = result.next_page_token
      if (token === null) return { items, total, pages }
    }
    throw new Error('more than 1000 pages')
  }

  describe('exchanges', () => {
    it('lists at least the four seeded exchanges as a bare array', async () => {
      const exchanges = (await ok('/v1/exchanges')).json<{ code: string; display_name: string }[]>()
      expect(Array.isArray(exchanges)).toBe(true)
      expect(exchanges.length).toBeGreaterThanOrEqual(4)
      expect(exchanges.map((exchange) => exchange.code)).toEqual(
        expect.arrayContaining(['binance', 'coinbase', 'bybit_spot', 'bybit_linear']),
      )
      for (const exchange of exchanges) {
        expect(Object.keys(exchange).sort()).toEqual(['code', 'display_name'])
        expect(exchange.display_name).not.toBe('')
      }
    })
  })

  describe('instruments', () => {
    it("pages an exchange's instruments with a default limit of 100, by symbol, each exactly once", async () => {
      const first = (await ok('/v1/exchanges/binance/instruments')).json<PageOf<Instrument>>()
      expect(first.limit).toBe(100)
      expect(first.items).toHaveLength(first.total)
      expect(first.next_page_token).toBeNull()
      expect(first.items).toContainEqual({
        symbol: 'BTCUSDT',
        base: 'BTC',
        quote: 'USDT',
        instrument_type: 'spot',
      })
      const { items, total, pages } = await walk<Instrument>('/v1/exchanges/binance/instruments', 7)
      expect(total).toBe(first.total)
      expect(items).toEqual(first.items)
      expect(pages).toBe(Math.ceil(total / 7))
      const symbols = items.map((item) => item.symbol)
      expect(new Set(symbols).size).toBe(symbols.length)
      expect(symbols).toEqual([...symbols].sort())
      expect(
        (await ok('/v1/exchanges/binance/instruments?limit=1000')).json<PageOf<Instrument>>().limit,
      ).toBe(1000)
    })

    it('shows perpetuals as such', async () => {
      const linear = (await ok('/v1/exchanges/bybit_linear/instruments?search=BTC')).json<
        PageOf<Instrument>
      >()
      expect(linear.items).toEqual([
        { symbol: 'BTCUSDT', base: 'BTC', quote: 'USDT', instrument_type: 'perpetual' },
      ])
    })

    it('matches search as a case-insensitive symbol prefix', async () => {
      for (const search of ['btc', 'BTC', 'bTc']) {
        const result = (await ok(`/v1/exchanges/binance/instruments?search=${search}`)).json<
          PageOf<Instrument>
        >()
        expect(result.items.map((item) => item.symbol).sort()).toEqual(['BTCUSDC', 'BTCUSDT'])
        expect(result.total).toBe(2)
      }
      const coinbase = (await ok('/v1/exchanges/coinbase/instruments?search=eth-')).json<
        PageOf<Instrument>
      >()
      expect(coinbase.items.map((item) => item.symbol)).toEqual(['ETH-USD'])
      // A prefix, not a substring; LIKE's wildcards are plain characters.
      for (const search of ['USDT', '%25', '_TC', 'B%25']) {
        const none = (await ok(`/v1/exchanges/binance/instruments?search=${search}`)).json<
          PageOf<Instrument>
        >()
        expect(none, search).toEqual({ items: [], total: 0, limit: 100, next_page_token: null })
      }
      const paged = await walk<Instrument>('/v1/exchanges/binance/instruments?search=b', 1)
      expect(paged.items.map((item) => item.symbol)).toEqual([
        'BNBUSDC',
        'BNBUSDT',
        'BTCUSDC',
        'BTCUSDT',
      ])
      expect(paged.total).toBe(4)
    })

    it('answers 404 not_found for an unknown exchange', async () => {
      for (const exchange of ['nasdaq', 'BINANCE', 'binance%20']) {
        const answer = await send(`${url}/v1/exchanges/${exchange}/instruments`)
        expect(answer.status, exchange).toBe(404)
        expect(errorOf(answer).code).toBe('not_found')
      }
    })

    it('answers 400 for a limit out of 1..1000 or a bad page_token', async () => {
      for (const query of [
        'limit=0',
        'limit=1001',
        'limit=abc',
        'page_token=%%%',
        'page_token=e30',
      ]) {
        const answer = await send(`${url}/v1/exchanges/binance/instruments?${query}`)
        expect(answer.status, query).toBe(400)
        expect(errorOf(answer).code).toBe('invalid_argument')
      }
    })
  })

  describe('datastreams', () => {
    it('walks all pages of every datastream: each id exactly once, and the total matches', async () => {
      const first = (await ok('/v1/datastreams')).json<PageOf<Datastream>>()
      expect(first.limit).toBe(100)
      expect(first.items).toHaveLength(100)
      expect(first.total).toBe(540)
      expect(first.next_page_token).not.toBeNull()
      for (const limit of [77, 1000]) {
        const { items, total } = await walk<Datastream>('/v1/datastreams', limit)
        expect(total).toBe(540)
        const ids = items.map((item) => item.datastream_id)
        expect(ids).toHaveLength(540)
        expect(new Set(ids).size).toBe(540)
        expect(ids).toEqual(Array.from({ length: 540 }, (_, index) => index + 1))
      }
      for (const item of first.items) {
        expect(Object.keys(item).sort()).toEqual(
          ['datastream_id', 'exchange', 'instrument', 'stream_type', 'wire_format'].sort(),
        )
        expect(item.wire_format).toBe('json')
        expect(STREAM_TYPES).toContain(item.stream_type)
      }
    })

    it('filters by exchange, instrument and stream_type, and pages the filtered list', async () => {
      const cases: [string, number, (item: Datastream) => boolean][] = [
        ['exchange=coinbase', 80, (item) => item.exchange === 'coinbase'],
        [
          'exchange=coinbase&stream_type=trade',
          20,
          (item) => item.exchange === 'coinbase' && item.stream_type === 'trade',
        ],
        ['instrument=BTCUSDT', 17, (item) => item.instrument === 'BTCUSDT'],
        ['stream_type=liquidation', 20, (item) => item.stream_type === 'liquidation'],
        [
          'exchange=bybit_linear&instrument=BTCUSDT&stream_type=liquidation',
          1,
          (item) => item.exchange === 'bybit_linear' && item.instrument === 'BTCUSDT',
        ],
        ['exchange=nasdaq', 0, () => false],
      ]
      for (const [filter, expected, matches] of cases) {
        const { items, total } = await walk<Datastream>(`/v1/datastreams?${filter}`, 7)
        expect(total, filter).toBe(expected)
        expect(items, filter).toHaveLength(expected)
        expect(items.every(matches), filter).toBe(true)
        expect(new Set(items.map((item) => item.datastream_id)).size).toBe(expected)
      }
    })

    it('answers 400 for an unknown stream_type, a limit out of 1..1000 or a bad page_token', async () => {
      for (const query of [
        'stream_type=bogus',
        'stream_type=TRADE',
        'limit=0',
        'limit=1001',
        'limit=abc',
        'page_token=***',
        `page_token=${Buffer.from('{"a":"x"}').toString('base64url')}`,
        `page_token=${Buffer.from('{"a":1.5}').toString('base64url')}`,
      ]) {
        const answer = await send(`${url}/v1/datastreams?${query}`)
        expect(answer.status, query).toBe(400)
        expect(errorOf(answer).code).toBe('invalid_argument')
      }
    })
  })
})
