/**
 * `GET /v1/availability?datastream_id=N`: the ranges of a datastream that the account recorded
 * (its subscription's spans), as int64 nanoseconds in strings, `from` inclusive and `to`
 * exclusive, with an estimate of the rows an export of each would hold.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from './support/server.js'
import { errorOf, GLOBEX_KEY, RFC3339_UTC, send, spansOf, startServer } from './support/server.js'
import type { ExportJob } from './support/exports-helpers.js'
import {
  EXPORT_ENV,
  createExport,
  datastreamOf,
  fetchArtifacts,
  parseCsvGz,
  recordSpan,
  waitForExport,
} from './support/exports-helpers.js'

interface Availability {
  datastream: { datastream_id: number; exchange: string; instrument: string; stream_type: string }
  ranges: { from: string; to: string; rows_estimate: number }[]
  updated_at: string
}

let server: TestServer

beforeAll(async () => {
  server = await startServer(EXPORT_ENV)
})
afterAll(async () => {
  await server.close()
})

const availability = (query: string, apiKey?: string) =>
  send(`${server.url}/v1/availability?${query}`, apiKey === undefined ? {} : { apiKey })

const nsOf = (rfc3339: string) => `${String(Date.parse(rfc3339))}000000`

describe('GET /v1/availability', () => {
  it('answers no ranges for a datastream the account never recorded', async () => {
    const id = await datastreamOf(server.url, 'coinbase', 'ETH-USD', 'trade')
    const answer = await availability(`datastream_id=${String(id)}`)
    expect(answer.status, answer.text).toBe(200)
    const body = answer.json<Availability>()
    expect(body.datastream).toEqual({
      datastream_id: id,
      exchange: 'coinbase',
      instrument: 'ETH-USD',
      stream_type: 'trade',
      wire_format: 'json',
    })
    expect(body.ranges).toEqual([])
    expect(body.updated_at).toMatch(RFC3339_UTC)
  })

  it("answers the account's spans as ns strings, an open one ending now, per account", async () => {
    const id = await datastreamOf(server.url, 'binance', 'BTCUSDT', 'trade')
    const span = await recordSpan(server.url, id)
    const resumed = await send(`${server.url}/v1/subscriptions/${span.subscriptionId}/resume`, {
      method: 'POST',
    })
    expect(resumed.status).toBe(204)
    const spans = await spansOf(server.url, span.subscriptionId)
    expect(spans).toHaveLength(2)

    const answer = await availability(`datastream_id=${String(id)}`)
    const body = answer.json<Availability>()
    expect(body.ranges).toHaveLength(2)
    const [closed, open] = body.ranges
    // Strings in the wire format itself, not only once parsed.
    expect(answer.text).toMatch(/"from":"\d{19}","to":"\d{19}","rows_estimate":\d+/)
    expect(closed).toMatchObject({
      from: nsOf(spans[0]!.started_at),
      to: nsOf(spans[0]!.ended_at!),
    })
    expect(open?.from).toBe(nsOf(spans[1]!.started_at))
    // The open span ends when the answer was computed.
    expect(open?.to).toBe(nsOf(body.updated_at))
    expect(BigInt(open!.to)).toBeGreaterThanOrEqual(BigInt(open!.from))

    // Another account recorded nothing of it.
    const other = (
      await availability(`datastream_id=${String(id)}`, GLOBEX_KEY)
    ).json<Availability>()
    expect(other.ranges).toEqual([])
  })

  it('estimates exactly the rows a raw export of a range holds', async () => {
    const id = await datastreamOf(server.url, 'bybit_spot', 'ETHUSDT', 'ticker')
    await recordSpan(server.url, id, 3_100)
    const [range] = (await availability(`datastream_id=${String(id)}`)).json<Availability>().ranges
    expect(range).toBeDefined()
    expect(range!.rows_estimate).toBeGreaterThanOrEqual(2)

    const created = await createExport(server.url, {
      datastream_id: id,
      start_time: range!.from,
      end_time: range!.to,
    })
    const job = await waitForExport(server.url, created.json<ExportJob>().id)
    expect(job.status).toBe('succeeded')
    const { files } = await fetchArtifacts(server.url, job.id)
    const rows = files.reduce((sum, file) => sum + parseCsvGz(file.bytes).length - 1, 0)
    expect(range!.rows_estimate).toBe(rows)
  })

  it('answers no ranges once the subscription is deleted (its spans are gone)', async () => {
    const id = await datastreamOf(server.url, 'binance', 'XRPUSDT', 'trade')
    const span = await recordSpan(server.url, id, 1_100)
    expect(
      (await availability(`datastream_id=${String(id)}`)).json<Availability>().ranges,
    ).toHaveLength(1)
    await send(`${server.url}/v1/subscriptions/${span.subscriptionId}`, { method: 'DELETE' })
    expect((await availability(`datastream_id=${String(id)}`)).json<Availability>().ranges).toEqual(
      [],
    )
  })

  it('answers 400 for a missing, malformed or out-of-range datastream_id', async () => {
    for (const query of [
      '',
      'datastream_id=',
      'datastream_id=abc',
      'datastream_id=0',
      'datastream_id=-1',
      'datastream_id=1.5',
      'datastream_id=1e3',
      'datastream_id=9223372036854775808',
      'datastream_id=12345678901234567890',
    ]) {
      const answer = await availability(query)
      expect(answer.status, query).toBe(400)
      expect(errorOf(answer), query).toEqual({
        code: 'invalid_argument',
        message: 'Invalid datastream_id: must be a positive integer',
      })
    }
    const repeated = await availability('datastream_id=1&datastream_id=2')
    expect(repeated.status).toBe(400)
    expect(errorOf(repeated).message).toBe('datastream_id must be given once')
  })

  it('answers 404 for an unknown datastream, int64 ones past 2^53 included', async () => {
    for (const id of ['999999', '9007199254740993', '9223372036854775807']) {
      const answer = await availability(`datastream_id=${id}`)
      expect(answer.status, id).toBe(404)
      expect(errorOf(answer), id).toEqual({
        code: 'not_found',
        message: `Datastream ${id} not found`,
      })
    }
  })
})
