import { createHmac, randomUUID } from 'node:crypto'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { parquetReadObjects } from 'hyparquet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from './support/server.js'
import {
  API_KEYS_ENV,
  errorOf,
  GLOBEX_KEY,
  send,
  startServer,
  TEST_DATABASE,
} from './support/server.js'
import type { ExportJob } from './support/exports-helpers.js'
import {
  createExport,
  datastreamOf,
  EXPORT_ENV,
  fetchArtifacts,
  ns,
  parseCsvGz,
  rawInteger,
  recordSpan,
  waitForExport,
} from './support/exports-helpers.js'

const SECRET = 'test-signing-secret-0123456789abcdef'
let server: TestServer
let url: string
/** A binance BTCUSDT trade subscription with one closed span of about two seconds. */
let binance: { datastreamId: number; subscriptionId: string; startMs: number; endMs: number }
/** The same for bybit_linear, whose trade messages bundle several trades (unfold). */
let bybit: { datastreamId: number; subscriptionId: string; startMs: number; endMs: number }

beforeAll(async () => {
  server = await startServer({ ...EXPORT_ENV, DOWNLOAD_SIGNING_SECRET: SECRET })
  url = server.url
  const binanceId = await datastreamOf(url, 'binance', 'BTCUSDT', 'trade')
  const bybitId = await datastreamOf(url, 'bybit_linear', 'ETHUSDT', 'trade')
  const [a, b] = await Promise.all([recordSpan(url, binanceId), recordSpan(url, bybitId)])
  binance = { datastreamId: binanceId, ...a }
  bybit = { datastreamId: bybitId, ...b }
})
afterAll(async () => {
  await server.close()
})

/** A range that holds the whole span of `recorded`. */
function around(recorded: { startMs: number; endMs: number }) {
  return { start_time: ns(recorded.startMs - 60_000), end_time: ns(recorded.endMs + 60_000) }
}

async function exportAndWait(body: Record<string, unknown>): Promise<ExportJob> {
  const created = await createExport(url, body)
  expect(created.status, created.text).toBe(202)
  return waitForExport(url, created.json<ExportJob>().id)
}

const customTrade = {
  columns: [
    { output_column: 'ts_ns', meta: { value: 'collection_timestamp_ns', format: 'ns' } },
    { output_column: 'ts_ms', meta: { value: 'collection_timestamp_ns', format: 'ms' } },
    { output_column: 'ts_iso', meta: { value: 'collection_timestamp_ns', format: 'iso8601' } },
    {
      output_column: 'price',
      data: {
        binance: { json: { path: 'p', type: 'decimal(2)' } },
        bybit_linear: { json: { path: 'p', type: 'decimal(2)' } },
      },
    },
    {
      output_column: 'double_price',
      data: {
        binance: { json: { path: 'p', type: 'f64' }, transform: '({v} + 0) * 2' },
        bybit_linear: { json: { path: 'p', type: 'f64' }, transform: '({v} + 0) * 2' },
      },
    },
    {
      output_column: 'side',
      data: {
        binance: {
          json: { path: 'm', type: 'bool' },
          transform: "CASE WHEN {v} THEN 'sell' ELSE 'buy' END",
        },
        bybit_linear: {
          json: { path: 'S', type: 'string' },
          transform: "CASE WHEN {v} = 'Buy' THEN 'buy' ELSE 'sell' END",
        },
      },
    },
    {
      output_column: 'symbol',
      data: { bybit_linear: { json: { path: '$.topic', type: 'string' } } },
    },
  ],
  unfold: { bybit_linear: { path: 'data' } },
}

describe('creating an export', () => {
  it('answers 202 with the queued job, times as exact JSON integers, options resolved', async () => {
    const start = '1705312800123456789'
    const created = await createExport(url, {
      datastream_id: binance.datastreamId,
      start_time: start,
      end_time: '2024-01-15T11:00:00.5Z',
    })
    expect(created.status, created.text).toBe(202)
    const job = created.json<ExportJob>()
    expect(job).toMatchObject({
      datastream_id: binance.datastreamId,
      format: 'csv',
      format_options: {},
      status: 'queued',
      started_at: null,
      finished_at: null,
    })
    expect(job.id).toMatch(/^exp_[0-9a-f]{32}$/)
    expect(job.reason).toBeUndefined()
    expect(rawInteger(created.text, 'start_time')).toBe(start)
    expect(rawInteger(created.text, 'end_time')).toBe('1705316400500000000')
    const read = await send(`${url}/v1/exports/${job.id}`)
    expect(rawInteger(read.text, 'start_time')).toBe(start)
  })

  it('takes start and end as JSON integers too, exactly, even past 2^53', async () => {
    const created = await createExport(url, {
      datastream_id: binance.datastreamId,
      start_time: 0,
    }).catch(() => undefined)
    expect(created?.status).toBe(400) // end_time missing
    const answer = await send(`${url}/v1/exports`, {
      rawBody: `{"datastream_id":${String(binance.datastreamId)},"start_time":1705312800123456789,"end_time":1705312800123456790}`,
    })
    expect(answer.status, answer.text).toBe(202)
    expect(rawInteger(answer.text, 'start_time')).toBe('1705312800123456789')
    expect(rawInteger(answer.text, 'end_time')).toBe('1705312800123456790')
  })

  it('echoes parquet format options with their defaults', async () => {
    const answer = await createExport(url, {
      datastream_id: binance.datastreamId,
      ...around(binance),
      format: 'parquet',
      format_options: { compression: 'gzip' },
    })
    expect(answer.status, answer.text).toBe(202)
    expect(answer.json<ExportJob>().format_options).toEqual({
      compression: 'gzip',
      row_group_size: 100000,
    })
  })

  it.each([
    [
      'end before start',
      { start_time: '2000', end_time: '1000' },
      /end_time must be after start_time/,
    ],
    [
      'end equal to start',
      { start_time: '1000', end_time: '1000' },
      /end_time must be after start_time/,
    ],
    ['a malformed time', { start_time: '2024-01-15 10:00' }, /start_time must be/],
    [
      'ten fractional digits',
      { start_time: '2024-01-15T10:00:00.1234567890Z' },
      /start_time must be/,
    ],
    ['a fractional number', { start_time: 1.5 }, /start_time must be/],
    ['a negative time', { start_time: -5 }, /start_time must be/],
    ['an unknown field', { compress: true }, /unknown field "compress"/],
    ['an unknown csv option', { format_options: { delimiter: ';' } }, /unknown key "delimiter"/],
    [
      'an unknown parquet option',
      { format: 'parquet', format_options: { level: 3 } },
      /unknown key "level"/,
    ],
    ['a bad format', { format: 'json' }, /format must be csv or parquet/],
    ['an unknown schema name', { schema: 'normalized_trades' }, /schema must be/],
    ['a bad inline schema', { schema: { columns: [] } }, /at least 1 column/],
    [
      'a bad inline transform',
      {
        schema: {
          columns: [
            {
              output_column: 'x',
              data: { binance: { json: { path: 'p', type: 'f64' }, transform: 'eval({v})' } },
            },
          ],
        },
      },
      /Invalid transform/,
    ],
    [
      'too many inline columns',
      {
        schema: {
          columns: Array.from({ length: 101 }, (_, i) => ({
            output_column: `c${String(i)}`,
            meta: { value: 'collection_timestamp_ns' },
          })),
        },
      },
      /Schema has too many columns/,
    ],
    ['a bad datastream id', { datastream_id: 'one' }, /datastream_id must be a positive integer/],
  ])('refuses %s with 400', async (_label, override, message) => {
    const answer = await createExport(url, {
      datastream_id: binance.datastreamId,
      start_time: '1000',
      end_time: '2000',
      ...override,
    })
    expect(answer.status, answer.text).toBe(400)
    expect(errorOf(answer).code).toBe('invalid_argument')
    expect(errorOf(answer).message).toMatch(message)
  })

  it('takes ISO 8601 times in lower case and without seconds, as the same instants', async () => {
    const answer = await createExport(url, {
      datastream_id: binance.datastreamId,
      start_time: '2024-01-15t10:00z',
      end_time: '2024-01-15T11:00:00.5+01:00',
    })
    expect(answer.status, answer.text).toBe(202)
    expect(answer.json<ExportJob>()).toMatchObject({
      start_time: 1_705_312_800_000_000_000,
      end_time: 1_705_312_800_500_000_000,
    })
  })

  it('answers 404 for an unknown datastream and 403 without a subscription', async () => {
    const unknown = await createExport(url, {
      datastream_id: 999_999,
      start_time: '1',
      end_time: '2',
    })
    expect(unknown.status).toBe(404)
    const notSubscribed = await datastreamOf(url, 'coinbase', 'SOL-USD', 'trade')
    const never = await createExport(url, {
      datastream_id: notSubscribed,
      start_time: '1',
      end_time: '2',
    })
    expect(never.status).toBe(403)
    expect(errorOf(never)).toEqual({
      code: 'permission_denied',
      message: `No subscription to datastream ${String(notSubscribed)}`,
    })
    // Another account's subscription is not this account's.
    const theirs = await createExport(url, {
      datastream_id: binance.datastreamId,
      start_time: '1',
      end_time: '2',
    }).then(() =>
      send(`${url}/v1/exports`, {
        apiKey: GLOBEX_KEY,
        body: { datastream_id: binance.datastreamId, start_time: '1', end_time: '2' },
      }),
    )
    expect(theirs.status).toBe(403)
  })

  it('answers 400 for a schema of another stream category and 404 for an unknown schema id', async () => {
    const book = await createExport(url, {
      datastream_id: binance.datastreamId,
      ...around(binance),
      schema: 'book_5',
    })
    expect(book.status).toBe(400)
    expect(errorOf(book).message).toMatch(/no variant for stream category trade/)
    const unknown = await createExport(url, {
      datastream_id: binance.datastreamId,
      ...around(binance),
      schema: `sch_${'a'.repeat(32)}`,
    })
    expect(unknown.status).toBe(404)
  })

  it('answers 402 for an account whose billing status is SUSPENDED', async () => {
    const local = await startServer({
      ...EXPORT_ENV,
      API_KEYS: `${API_KEYS_ENV},late:late-payer-key-0123456789`,
    })
    try {
      const id = await datastreamOf(local.url, 'binance', 'ETHUSDT', 'trade')
      expect(
        (
          await send(`${local.url}/v1/subscriptions`, {
            apiKey: 'late-payer-key-0123456789',
            body: { datastream_id: id },
          })
        ).status,
      ).toBe(201)
      await local.app.db.run(`UPDATE accounts SET access_status = 'SUSPENDED' WHERE name = 'late'`)
      const answer = await send(`${local.url}/v1/exports`, {
        apiKey: 'late-payer-key-0123456789',
        body: { datastream_id: id, start_time: '1', end_time: '2' },
      })
      expect(answer.status).toBe(402)
      expect(errorOf(answer).code).toBe('payment_required')
    } finally {
      await local.close()
    }
  })
})

describe('an export from start to download', () => {
  it('produces the custom columns, downloads through signed URLs without a key, and is reproducible', async () => {
    const body = { datastream_id: bybit.datastreamId, ...around(bybit), schema: customTrade }
    const first = await exportAndWait(body)
    expect(first.status).toBe('succeeded')
    expect(first.started_at).not.toBeNull()
    expect(first.finished_at).not.toBeNull()
    const { download, files } = await fetchArtifacts(url, first.id)
    expect(download.count).toBe(files.length)
    expect(download.count).toBeGreaterThanOrEqual(1)
    expect(download.total_bytes).toBe(files.reduce((sum, file) => sum + file.bytes.length, 0))
    for (const artifact of download.artifacts) {
      expect(artifact.id).toMatch(/^art_[0-9a-f]{32}$/)
      expect(artifact.filename).toMatch(/^bybit_linear_ETHUSDT_trade_part_\d{10}\.csv\.gz$/)
      expect(new URL(artifact.url).searchParams.get('sig')).toBeTruthy()
    }
    const rows = files.flatMap((file) => parseCsvGz(file.bytes).slice(1))
    expect(parseCsvGz(files[0]?.bytes ?? Buffer.alloc(0))[0]).toEqual([
      'ts_ns',
      'ts_ms',
      'ts_iso',
      'price',
      'double_price',
      'side',
      'symbol',
    ])

    // The raw export of the same range has the messages the rows come from.
    const raw = await exportAndWait({ datastream_id: bybit.datastreamId, ...around(bybit) })
    const rawFiles = (await fetchArtifacts(url, raw.id)).files
    const rawRows = rawFiles.flatMap((file) => parseCsvGz(file.bytes).slice(1))
    expect(parseCsvGz(rawFiles[0]?.bytes ?? Buffer.alloc(0))[0]).toEqual([
      'collection_timestamp_ns',
      'message',
    ])
    expect(rawRows.length).toBeGreaterThanOrEqual(1)
    const expected = rawRows.flatMap(([timestamp = '', message = '']) => {
      const parsed = JSON.parse(message) as { topic: string; data: { p: string; S: string }[] }
      return parsed.data.map((trade) => [
        timestamp,
        timestamp.slice(0, -6),
        new Date(Number(timestamp.slice(0, -6))).toISOString().slice(0, 19),
        String(Number(trade.p)),
        String(Number(trade.p) * 2),
        trade.S === 'Buy' ? 'buy' : 'sell',
        parsed.topic,
      ])
    })
    expect(rows.map((row) => [...row.slice(0, 2), row[2]?.slice(0, 19), ...row.slice(3)])).toEqual(
      expected,
    )
    for (const row of rows) {
      const tsNs = BigInt(row[0] ?? '0')
      expect(tsNs).toBeGreaterThanOrEqual(BigInt(ns(bybit.startMs)))
      expect(tsNs).toBeLessThan(BigInt(ns(bybit.endMs)))
    }

    const second = await exportAndWait(body)
    const again = await fetchArtifacts(url, second.id)
    expect(again.files.map((file) => file.filename)).toEqual(files.map((file) => file.filename))
    expect(again.files.map((file) => file.bytes.toString('base64'))).toEqual(
      files.map((file) => file.bytes.toString('base64')),
    )
  })

  it('exports a built-in schema by name and by id, and a stored schema snapshotted at creation', async () => {
    const normalized = await exportAndWait({
      datastream_id: binance.datastreamId,
      ...around(binance),
      schema: 'normalized',
    })
    expect(normalized.status).toBe('succeeded')
    const header = parseCsvGz(
      (await fetchArtifacts(url, normalized.id)).files[0]?.bytes ?? Buffer.alloc(0),
    )[0]
    expect(header).toEqual([
      'collection_timestamp_ns',
      'exchange_timestamp_ms',
      'trade_id',
      'price',
      'quantity',
      'side',
    ])

    const schema = await send(`${url}/v1/export-schemas`, {
      body: {
        name: `snap_${randomUUID().slice(0, 8)}`,
        stream_category: 'trade',
        columns: [
          { output_column: 'first', meta: { value: 'collection_timestamp_ns', format: 's' } },
        ],
      },
    })
    const schemaId = schema.json<{ id: string }>().id
    // Created, but the worker has not run yet when the new version is published.
    const created = await createExport(url, {
      datastream_id: binance.datastreamId,
      ...around(binance),
      schema: schemaId,
    })
    expect(created.status).toBe(202)
    await send(`${url}/v1/export-schemas/${schemaId}/draft`, {
      body: { columns: [{ output_column: 'second', meta: { value: 'collection_timestamp_ns' } }] },
    })
    await send(`${url}/v1/export-schemas/${schemaId}/publish`, { method: 'POST' })
    await send(`${url}/v1/export-schemas/${schemaId}`, { method: 'DELETE' })
    const job = await waitForExport(url, created.json<ExportJob>().id)
    expect(job.status).toBe('succeeded')
    const rows = parseCsvGz((await fetchArtifacts(url, job.id)).files[0]?.bytes ?? Buffer.alloc(0))
    expect(rows[0]).toEqual(['first'])
    expect(rows[1]?.[0]).toMatch(/^\d{10}$/)
  })

  it('writes Parquet with typed columns', async () => {
    const job = await exportAndWait({
      datastream_id: bybit.datastreamId,
      ...around(bybit),
      schema: customTrade,
      format: 'parquet',
    })
    expect(job.status).toBe('succeeded')
    const { download, files } = await fetchArtifacts(url, job.id)
    expect(download.artifacts[0]?.filename).toMatch(
      /^bybit_linear_ETHUSDT_trade_part_\d{10}\.parquet$/,
    )
    const bytes = files[0]?.bytes ?? Buffer.alloc(0)
    const rows = await parquetReadObjects({ file: Uint8Array.from(bytes).buffer })
    expect(rows.length).toBeGreaterThanOrEqual(1)
    const row = rows[0] as Record<string, unknown>
    // A nanosecond timestamp is a TIMESTAMP column (read here as a Date); parquet-types.test.ts
    // checks every type with DuckDB.
    expect(row['ts_ns']).toBeInstanceOf(Date)
    expect(typeof row['double_price']).toBe('number')
    expect(typeof row['side']).toBe('string')
    expect(row['symbol']).toBe('publicTrade.ETHUSDT')
  })

  it('succeeds with no files when the range holds no recorded data', async () => {
    const job = await exportAndWait({
      datastream_id: binance.datastreamId,
      start_time: '2020-01-01T00:00:00Z',
      end_time: '2020-01-02T00:00:00Z',
    })
    expect(job.status).toBe('succeeded')
    const download = (await send(`${url}/v1/exports/${job.id}/download`)).json()
    expect(download).toEqual({ artifacts: [], count: 0, total_bytes: 0 })
  })
})

describe('signed download links', () => {
  async function firstArtifact(): Promise<{ id: string; url: string }> {
    const job = await exportAndWait({ datastream_id: binance.datastreamId, ...around(binance) })
    const download = (await send(`${url}/v1/exports/${job.id}/download`)).json<{
      artifacts: { id: string; url: string }[]
    }>()
    const artifact = download.artifacts[0]
    if (artifact === undefined) throw new Error('no artifact')
    return artifact
  }

  it('refuses a tampered link with 403 and the envelope', async () => {
    const artifact = await firstArtifact()
    const link = new URL(artifact.url)
    const sig = link.searchParams.get('sig') ?? ''
    const tampered = new URL(link)
    tampered.searchParams.set('sig', `${sig.slice(0, -1)}${sig.endsWith('A') ? 'B' : 'A'}`)
    const later = new URL(link)
    later.searchParams.set('expires', String(Number(link.searchParams.get('expires')) + 3600))
    for (const bad of [tampered, later, new URL(`${link.origin}${link.pathname}`)]) {
      const answer = await send(bad.toString(), { apiKey: null })
      expect(answer.status, bad.toString()).toBe(403)
      expect(errorOf(answer)).toEqual({
        code: 'permission_denied',
        message: 'Download link is invalid: its signature does not match',
      })
    }
  })

  it('refuses an expired link with 403, and a link to a deleted export with 404', async () => {
    const artifact = await firstArtifact()
    const expires = Math.floor(Date.now() / 1000) - 1
    const sig = createHmac('sha256', SECRET)
      .update(`download:${artifact.id}:${String(expires)}`)
      .digest('base64url')
    const expired = await send(
      `${url}/downloads/${artifact.id}?expires=${String(expires)}&sig=${sig}`,
      { apiKey: null },
    )
    expect(expired.status).toBe(403)
    expect(errorOf(expired).message).toMatch(/^Download link has expired/)
    const fresh = `${url}/downloads/art_${'0'.repeat(32)}`
    const future = Math.floor(Date.now() / 1000) + 60
    const freshSig = createHmac('sha256', SECRET)
      .update(`download:art_${'0'.repeat(32)}:${String(future)}`)
      .digest('base64url')
    const missing = await send(`${fresh}?expires=${String(future)}&sig=${freshSig}`, {
      apiKey: null,
    })
    expect(missing.status).toBe(404)
    expect(errorOf(missing).code).toBe('not_found')
  })
})

describe('the states of an export', () => {
  it('answers 400 to download before success, and to cancel once finished', async () => {
    const job = await exportAndWait({ datastream_id: binance.datastreamId, ...around(binance) })
    const cancel = await send(`${url}/v1/exports/${job.id}/cancel`, { method: 'POST' })
    expect(cancel.status).toBe(400)
    expect(errorOf(cancel)).toEqual({
      code: 'invalid_argument',
      message: `Export ${job.id} has already finished`,
    })
  })

  it('cancels a running export (204, no files), and a second cancel is 204 too', async () => {
    const slow = await startServer({ ...EXPORT_ENV, TICKSUPPLY_TEST_EXPORT_DELAY_MS: '60000' })
    try {
      const id = await datastreamOf(slow.url, 'binance', 'BTCUSDT', 'trade')
      const span = await recordSpan(slow.url, id, 1_100)
      const created = await createExport(slow.url, { datastream_id: id, ...around(span) })
      const jobId = created.json<ExportJob>().id
      const download = await send(`${slow.url}/v1/exports/${jobId}/download`)
      expect(download.status).toBe(400)
      expect(errorOf(download).message).toMatch(/has not succeeded/)
      await waitForExport(slow.url, jobId, (job) => job.status === 'running')
      expect(
        (await send(`${slow.url}/v1/exports/${jobId}/cancel`, { method: 'POST' })).status,
      ).toBe(204)
      expect(
        (await send(`${slow.url}/v1/exports/${jobId}/cancel`, { method: 'POST' })).status,
      ).toBe(204)
      const job = (await send(`${slow.url}/v1/exports/${jobId}`)).json<ExportJob>()
      expect(job.status).toBe('canceled')
      expect(job.finished_at).not.toBeNull()
      expect((await send(`${slow.url}/v1/exports/${jobId}/download`)).status).toBe(400)
      // A queued one cancels too.
      const queued = await createExport(slow.url, { datastream_id: id, ...around(span) })
      expect(
        (
          await send(`${slow.url}/v1/exports/${queued.json<ExportJob>().id}/cancel`, {
            method: 'POST',
          })
        ).status,
      ).toBe(204)
      expect(
        (await send(`${slow.url}/v1/exports/${queued.json<ExportJob>().id}`)).json<ExportJob>()
          .status,
      ).toBe('canceled')
    } finally {
      await slow.close()
    }
  })

  it('deletes an export with its files, then answers 404', async () => {
    const job = await exportAndWait({ datastream_id: binance.datastreamId, ...around(binance) })
    const folder = join(server.artifactsDir, 'exports', job.id)
    expect(existsSync(folder)).toBe(true)
    expect((await send(`${url}/v1/exports/${job.id}`, { method: 'DELETE' })).status).toBe(204)
    expect(existsSync(folder)).toBe(false)
    expect((await send(`${url}/v1/exports/${job.id}`)).status).toBe(404)
    expect((await send(`${url}/v1/exports/${job.id}/download`)).status).toBe(404)
    expect((await send(`${url}/v1/exports/${job.id}`, { method: 'DELETE' })).status).toBe(404)
  })

  it('refuses exports of a deleted subscription, while old files still download', async () => {
    const id = await datastreamOf(url, 'coinbase', 'BTC-USD', 'trade')
    const span = await recordSpan(url, id, 2_100)
    const job = await exportAndWait({ datastream_id: id, ...around(span) })
    expect(job.status).toBe('succeeded')
    expect(
      (await send(`${url}/v1/subscriptions/${span.subscriptionId}`, { method: 'DELETE' })).status,
    ).toBe(204)
    const refused = await createExport(url, { datastream_id: id, ...around(span) })
    expect(refused.status).toBe(403)
    expect(errorOf(refused)).toEqual({
      code: 'permission_denied',
      message: 'Subscription has been deleted',
    })
    const { files } = await fetchArtifacts(url, job.id)
    expect(files.length).toBeGreaterThanOrEqual(1)
    expect(parseCsvGz(files[0]?.bytes ?? Buffer.alloc(0)).length).toBeGreaterThan(1)
  })

  it("lists exports newest first in pages, only the account's", async () => {
    const ids: string[] = []
    for (let index = 0; index < 3; index++)
      ids.push(
        (
          await createExport(url, {
            datastream_id: binance.datastreamId,
            start_time: '1',
            end_time: '2',
          })
        ).json<ExportJob>().id,
      )
    const first = (await send(`${url}/v1/exports?limit=2`)).json<{
      items: ExportJob[]
      total: number
      limit: number
      next_page_token: string | null
    }>()
    expect(first.items.map((job) => job.id)).toEqual([ids[2], ids[1]])
    expect(first.limit).toBe(2)
    expect(first.next_page_token).not.toBeNull()
    const second = (
      await send(`${url}/v1/exports?limit=2&page_token=${first.next_page_token ?? ''}`)
    ).json<{ items: ExportJob[] }>()
    expect(second.items[0]?.id).toBe(ids[0])
    expect((await send(`${url}/v1/exports?limit=101`)).status).toBe(400)
    expect((await send(`${url}/v1/exports?page_token=garbage!`)).status).toBe(400)
    const theirs = (await send(`${url}/v1/exports`, { apiKey: GLOBEX_KEY })).json<{
      total: number
    }>()
    expect(theirs.total).toBe(0)
    expect((await send(`${url}/v1/exports/${ids[0] ?? ''}`, { apiKey: GLOBEX_KEY })).status).toBe(
      404,
    )
  })

  // Several instances need PostgreSQL: a SQLite file has one owning process.
  if (TEST_DATABASE === 'postgres')
    it('runs every job exactly once with two servers on one database', async () => {
      // Instances share the database and the artifact storage (docs/deploy.md).
      const other = await startServer({
        ...EXPORT_ENV,
        DATABASE_URL: server.databaseUrl,
        ARTIFACTS_DIR: server.artifactsDir,
      })
      try {
        const ids: string[] = []
        for (let index = 0; index < 6; index++) {
          const target = index % 2 === 0 ? url : other.url
          ids.push(
            (
              await createExport(target, {
                datastream_id: binance.datastreamId,
                ...around(binance),
              })
            ).json<ExportJob>().id,
          )
        }
        for (const id of ids) expect((await waitForExport(url, id)).status).toBe('succeeded')
        for (const id of ids) {
          const [row] = await server.query<{ attempts: number | string }>(
            'SELECT attempts FROM exports WHERE id = ?',
            [id],
          )
          expect(Number(row?.attempts)).toBe(1)
          expect(readdirSync(join(server.artifactsDir, 'exports', id))).toHaveLength(1)
        }
      } finally {
        await other.close()
      }
    })
})

describe('idempotency on every POST and DELETE of exports', () => {
  it('replays the create byte for byte and answers a changed body with the mismatch 409', async () => {
    const key = randomUUID()
    const body = { datastream_id: binance.datastreamId, start_time: '1', end_time: '2' }
    const first = await createExport(url, body, key)
    const replay = await createExport(url, body, key)
    expect(first.status).toBe(202)
    expect(replay.status).toBe(202)
    expect(replay.text).toBe(first.text)
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    const changed = await createExport(url, { ...body, end_time: '3' }, key)
    expect(changed.status).toBe(409)
    expect(errorOf(changed).message).toBe(
      'Idempotency key reused with different request parameters',
    )
    // Validation comes before the claim: a rejected body does not use up a key.
    const fresh = randomUUID()
    expect((await createExport(url, { ...body, end_time: '0' }, fresh)).status).toBe(400)
    expect((await createExport(url, body, fresh)).status).toBe(202)
  })

  it.each([
    ['cancel', 'POST', '/cancel'],
    ['delete', 'DELETE', ''],
  ])(
    '%s replays its answer and refuses the key on another export',
    async (_label, method, suffix) => {
      const body = { datastream_id: binance.datastreamId, start_time: '1', end_time: '2' }
      const a = (await createExport(url, body)).json<ExportJob>().id
      const b = (await createExport(url, body)).json<ExportJob>().id
      const key = randomUUID()
      // A job without data may finish before the cancel arrives (then 400): either way it replays.
      const first = await send(`${url}/v1/exports/${a}${suffix}`, { method, key })
      expect([204, 400]).toContain(first.status)
      const replay = await send(`${url}/v1/exports/${a}${suffix}`, { method, key })
      expect(replay.status).toBe(first.status)
      expect(replay.text).toBe(first.text)
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
      const mismatch = await send(`${url}/v1/exports/${b}${suffix}`, { method, key })
      expect(mismatch.status).toBe(409)
    },
  )
})
