import { gunzipSync } from 'node:zlib'
import { setTimeout as sleep } from 'node:timers/promises'
import { expect } from 'vitest'
import type { Answer, Env } from './server.js'
import { send } from './server.js'

/** Settings for servers that export: a fast worker and rate limits no test reaches. */
export const EXPORT_ENV: Env = {
  EXPORT_POLL_MS: '50',
  RATE_LIMIT_PER_MINUTE: '1000000',
  RATE_LIMIT_PER_HOUR: '100000000',
}

export interface ExportJob {
  id: string
  datastream_id: number
  start_time: number
  end_time: number
  format: string
  format_options: Record<string, unknown>
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled'
  created_at: string
  started_at: string | null
  finished_at: string | null
  reason?: string
}

export interface Download {
  artifacts: { id: string; url: string; bytes: number; filename: string }[]
  count: number
  total_bytes: number
}

/** The datastream id of (exchange, instrument, stream type) from the catalog. */
export async function datastreamOf(
  url: string,
  exchange: string,
  instrument: string,
  streamType: string,
): Promise<number> {
  const answer = await send(
    `${url}/v1/datastreams?exchange=${exchange}&instrument=${instrument}&stream_type=${streamType}`,
  )
  const id = answer.json<{ items: { datastream_id: number }[] }>().items[0]?.datastream_id
  if (id === undefined) throw new Error(`no datastream ${exchange} ${instrument} ${streamType}`)
  return id
}

/** The raw text of `"field":<integer>` in a JSON text (exact, unlike JSON.parse). */
export function rawInteger(text: string, field: string): string | undefined {
  return new RegExp(`"${field}":(-?\\d+)[,}]`).exec(text)?.[1]
}

export async function createExport(url: string, body: unknown, key?: string): Promise<Answer> {
  return send(`${url}/v1/exports`, { body, ...(key === undefined ? {} : { key }) })
}

/** Polls the export until `done` holds for it (default: a terminal status). */
export async function waitForExport(
  url: string,
  id: string,
  done: (job: ExportJob) => boolean = (job) =>
    ['succeeded', 'failed', 'canceled'].includes(job.status),
  timeoutMs = 20_000,
): Promise<ExportJob> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const answer = await send(`${url}/v1/exports/${id}`)
    expect(answer.status).toBe(200)
    const job = answer.json<ExportJob>()
    if (done(job)) return job
    if (Date.now() > deadline) throw new Error(`export ${id} still ${job.status}`)
    await sleep(50)
  }
}

/** Downloads every artifact through its signed URL, without an API key. */
export async function fetchArtifacts(
  url: string,
  id: string,
): Promise<{ download: Download; files: { filename: string; bytes: Buffer }[] }> {
  const answer = await send(`${url}/v1/exports/${id}/download`)
  expect(answer.status, answer.text).toBe(200)
  const download = answer.json<Download>()
  const files = []
  for (const artifact of download.artifacts) {
    const response = await fetch(artifact.url)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-length')).toBe(String(artifact.bytes))
    const bytes = Buffer.from(await response.arrayBuffer())
    expect(bytes.length).toBe(artifact.bytes)
    files.push({ filename: artifact.filename, bytes })
  }
  return { download, files }
}

/** A gzip CSV file as rows of fields (simple quoting as written by the server). */
export function parseCsvGz(bytes: Buffer): string[][] {
  const text = gunzipSync(bytes).toString('utf8')
  const rows: string[][] = []
  let row: string[] = []
  let field = ''
  let quoted = false
  for (let index = 0; index < text.length; index++) {
    const char = text[index] ?? ''
    if (quoted) {
      if (char === '"' && text[index + 1] === '"') {
        field += '"'
        index++
      } else if (char === '"') quoted = false
      else field += char
    } else if (char === '"') quoted = true
    else if (char === ',') {
      row.push(field)
      field = ''
    } else if (char === '\n') {
      row.push(field)
      rows.push(row)
      row = []
      field = ''
    } else field += char
  }
  return rows
}

/** Subscribes, lets ~`recordMs` pass and pauses: one closed span. Returns its bounds in ms. */
export async function recordSpan(
  url: string,
  datastreamId: number,
  recordMs = 2_100,
): Promise<{ subscriptionId: string; startMs: number; endMs: number }> {
  const created = await send(`${url}/v1/subscriptions`, { body: { datastream_id: datastreamId } })
  expect(created.status, created.text).toBe(201)
  const subscriptionId = created.json<{ id: string }>().id
  await sleep(recordMs)
  expect(
    (await send(`${url}/v1/subscriptions/${subscriptionId}/pause`, { method: 'POST' })).status,
  ).toBe(204)
  const spans = (await send(`${url}/v1/subscriptions/${subscriptionId}/spans`)).json<
    { started_at: string; ended_at: string }[]
  >()
  const span = spans[0]
  if (span === undefined) throw new Error('no span')
  return {
    subscriptionId,
    startMs: Date.parse(span.started_at),
    endMs: Date.parse(span.ended_at),
  }
}

export const ns = (ms: number): string => `${String(ms)}000000`

/**
 * Records a short span of binance BTCUSDT trades, exports it as CSV and waits for the export to
 * succeed. Returns the job and its download links (as `GET /v1/exports/{id}/download` lists them).
 */
export async function runExport(
  url: string,
  recordMs = 2_100,
): Promise<{ job: ExportJob; download: Download }> {
  const datastreamId = await datastreamOf(url, 'binance', 'BTCUSDT', 'trade')
  const span = await recordSpan(url, datastreamId, recordMs)
  const created = await createExport(url, {
    datastream_id: datastreamId,
    start_time: ns(span.startMs),
    end_time: ns(span.endMs + 1),
  })
  expect(created.status, created.text).toBe(202)
  const job = await waitForExport(url, created.json<ExportJob>().id)
  expect(job.status, job.reason).toBe('succeeded')
  const answer = await send(`${url}/v1/exports/${job.id}/download`)
  expect(answer.status, answer.text).toBe(200)
  const download = answer.json<Download>()
  expect(download.count).toBeGreaterThan(0)
  return { job, download }
}

/**
 * An export of what a new subscription records for `recordMs` (Bybit spot BTCUSDT trades),
 * once a worker runs it: the place to stop, kill or freeze that worker.
 */
export async function startRunningExport(url: string, recordMs: number): Promise<string> {
  const datastreamId = await datastreamOf(url, 'bybit_spot', 'BTCUSDT', 'trade')
  const span = await recordSpan(url, datastreamId, recordMs)
  const created = await createExport(url, {
    datastream_id: datastreamId,
    start_time: ns(span.startMs - 1_000),
    end_time: ns(span.endMs + 1_000),
    schema: 'normalized',
  })
  expect(created.status, created.text).toBe(202)
  const { id } = created.json<ExportJob>()
  await waitForExport(url, id, (job) => job.status === 'running')
  return id
}
