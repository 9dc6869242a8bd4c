/**
 * `trades`, the spelling of the public SDKs' examples, is accepted wherever a request names the
 * stream type `trade`; answers (and file names) keep saying `trade`.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from './support/server.js'
import { errorOf, send, startServer } from './support/server.js'

let server: TestServer

beforeAll(async () => {
  server = await startServer()
})
afterAll(async () => {
  await server.close()
})

describe('stream_type=trades', () => {
  it('filters datastreams exactly like trade, and the items say trade', async () => {
    const trades = await send(`${server.url}/v1/datastreams?stream_type=trades&limit=1000`)
    const trade = await send(`${server.url}/v1/datastreams?stream_type=trade&limit=1000`)
    expect(trades.status).toBe(200)
    expect(trades.text).toBe(trade.text)
    const items = trades.json<{ items: { stream_type: string }[]; total: number }>()
    expect(items.total).toBeGreaterThan(0)
    expect(new Set(items.items.map((item) => item.stream_type))).toEqual(new Set(['trade']))
  })

  it('combines with the other filters', async () => {
    const answer = await send(
      `${server.url}/v1/datastreams?exchange=coinbase&instrument=BTC-USD&stream_type=trades`,
    )
    expect(answer.json<{ items: unknown[] }>().items).toEqual([
      expect.objectContaining({
        exchange: 'coinbase',
        instrument: 'BTC-USD',
        stream_type: 'trade',
      }),
    ])
  })

  it('is a stream category for export schemas, stored and shown as trade', async () => {
    const created = await send(`${server.url}/v1/export-schemas`, {
      body: {
        name: `alias_${randomUUID().slice(0, 8)}`,
        stream_category: 'trades',
        columns: [{ output_column: 'ts', meta: { value: 'collection_timestamp_ns' } }],
      },
    })
    expect(created.status, created.text).toBe(201)
    const schema = created.json<{ id: string; stream_category: string }>()
    expect(schema.stream_category).toBe('trade')
    // Sent back as `trades`, it is the same category: no change, so the update is accepted.
    const replaced = await send(`${server.url}/v1/export-schemas/${schema.id}`, {
      method: 'PUT',
      body: {
        stream_category: 'trades',
        columns: [
          { output_column: 'ms', meta: { value: 'collection_timestamp_ns', format: 'ms' } },
        ],
      },
    })
    expect(replaced.status, replaced.text).toBe(200)
  })

  it('is the only alias: other spellings are still a 400', async () => {
    for (const value of ['tradez', 'Trades', 'TRADE', 'orderbooks']) {
      const answer = await send(`${server.url}/v1/datastreams?stream_type=${value}`)
      expect(answer.status, value).toBe(400)
      expect(errorOf(answer).message, value).toMatch(/^stream_type must be one of trade, /)
    }
  })
})
