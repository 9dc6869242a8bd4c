/**
 * The library around the endpoints: `exports.waitFor` and `exports.downloadFiles` (which the
 * command line uses), a `User-Agent` naming the client and its version, per-request headers,
 * and the response metadata (request id, rate-limit headers) of every result.
 */
import {
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  CLIENT_VERSION,
  NetworkError,
  TimeoutError,
  UnexpectedResponseError,
  createClient,
  responseOf,
} from '../src/index.js'
import type { DownloadProgress, ExportJob, ExportProgress } from '../src/index.js'
import { CLIENT_ROOT } from './support/repo-root.js'
import type { RunningServer } from './support/server-process.js'
import { startServer } from './support/server-process.js'
import type { TestHttpServer } from './support/test-http-server.js'
import { sendJson, startTestHttpServer } from './support/test-http-server.js'

const JOB = {
  id: 'exp_0000000000000000000000000000000b',
  datastream_id: 5,
  start_time: 0,
  end_time: 1793494800000000000,
  format: 'csv',
  format_options: {},
  status: 'queued',
  created_at: '2026-11-01T00:00:00Z',
  started_at: null,
  finished_at: null,
}

describe('requests the client sends', () => {
  let api: TestHttpServer
  let statuses: string[] = []

  beforeAll(async () => {
    api = await startTestHttpServer((request, response) => {
      if (request.url === `/v1/exports/${JOB.id}`) {
        const status = statuses.shift() ?? 'succeeded'
        // Written as the server writes it: an int64 past 2^53, digit for digit.
        const text = JSON.stringify({ ...JOB, status }).replace(
          /"start_time":\d+/,
          '"start_time":1793491200000000001',
        )
        response.writeHead(200, { 'content-type': 'application/json' })
        response.end(text)
        return
      }
      if (request.url === '/v1/subscriptions/sub_a/pause') {
        sendJson(response, 204, undefined, { 'x-ratelimit-limit-minute': '200' })
        return
      }
      sendJson(response, 200, [{ code: 'binance', display_name: 'Binance' }], {
        'x-ratelimit-limit-minute': '200',
        'x-ratelimit-remaining-minute': '0',
        'x-ratelimit-reset-minute': '1796165400',
        'x-ratelimit-limit-hour': '10000',
        'x-ratelimit-remaining-hour': '9876',
      })
    })
  })
  afterAll(async () => {
    await api.close()
  })

  const client = () => createClient({ apiKey: 'library-key-0123456789', baseUrl: api.url })

  it('names the client and its version in User-Agent, the version of package.json', async () => {
    await client().exchanges.list()
    const manifest = JSON.parse(readFileSync(join(CLIENT_ROOT, 'package.json'), 'utf8')) as {
      version: string
    }
    expect(CLIENT_VERSION).toBe(manifest.version)
    expect(api.requests.at(-1)?.headers['user-agent']).toBe(
      `ticksupply-client-js/${manifest.version} node/${process.versions.node}`,
    )
  })

  it('sends per-request headers, and refuses to let them replace its own', async () => {
    await client().exchanges.list({ headers: { 'X-Trace-Id': 'trace-1' } })
    expect(api.requests.at(-1)?.headers['x-trace-id']).toBe('trace-1')
    const before = api.requests.length
    for (const name of ['Idempotency-Key', 'x-api-key', 'Content-Type']) {
      await expect(
        client().subscriptions.create({ datastream_id: 1 }, { headers: { [name]: 'x' } }),
      ).rejects.toThrow(TypeError)
    }
    await expect(
      client().exchanges.list({ headers: { 'x-bad': 'line\r\nbreak' } }),
    ).rejects.toThrow(TypeError)
    // Refused before anything was sent.
    expect(api.requests.length).toBe(before)
  })

  it('keeps the response metadata beside each result, and resolves a 204 to it', async () => {
    const exchanges = await client().exchanges.list()
    // The result is exactly the API's JSON...
    expect(exchanges).toEqual([{ code: 'binance', display_name: 'Binance' }])
    expect(JSON.stringify(exchanges)).toBe('[{"code":"binance","display_name":"Binance"}]')
    // ...and its metadata is one call away.
    const metadata = responseOf(exchanges)
    expect(metadata?.status).toBe(200)
    expect(metadata?.requestId).toMatch(/^req_[0-9a-f]{16}$/)
    expect(metadata?.rateLimit).toEqual({
      limitMinute: 200,
      remainingMinute: 0,
      resetMinute: 1796165400,
      limitHour: 10_000,
      remainingHour: 9876,
      resetHour: undefined,
    })
    const paused = await client().subscriptions.pause('sub_a')
    expect(paused.status).toBe(204)
    expect(paused.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/)
    expect(paused.rateLimit?.limitMinute).toBe(200)
  })

  it('waits for an export with exports.waitFor, telling each unfinished status', async () => {
    statuses = ['queued', 'running', 'running', 'succeeded']
    const seen: ExportProgress[] = []
    const job = await client().exports.waitFor(JOB.id, {
      pollMs: 10,
      maxPollMs: 20,
      onProgress: (progress) => seen.push(progress),
    })
    expect(job.status).toBe('succeeded')
    // Nanoseconds stay exact.
    expect(job.start_time).toBe('1793491200000000001')
    expect(seen.map((progress) => [progress.job.status, progress.polls])).toEqual([
      ['queued', 1],
      ['running', 2],
      ['running', 3],
    ])
    expect(seen.every((progress) => progress.elapsedMs >= 0)).toBe(true)
  })

  it('stops waiting when its signal aborts, with the signal’s reason', async () => {
    statuses = Array.from({ length: 1000 }, () => 'running')
    const controller = new AbortController()
    const reason = new Error('no longer needed')
    const waiting = client().exports.waitFor(JOB.id, {
      pollMs: 20,
      signal: controller.signal,
      onProgress: ({ polls }) => {
        if (polls === 2) controller.abort(reason)
      },
    })
    await expect(waiting).rejects.toBe(reason)
    statuses = []
  })

  it("stops waiting between two reads when the client's own signal aborts", async () => {
    statuses = Array.from({ length: 1000 }, () => 'running')
    const controller = new AbortController()
    const reason = new Error('client closed')
    const before = api.requests.length
    const waiting = createClient({
      apiKey: 'library-key-0123456789',
      baseUrl: api.url,
      signal: controller.signal,
    }).exports.waitFor(JOB.id, {
      // Far longer than the test waits: only the abort can end the sleep in time.
      pollMs: 600_000,
      maxPollMs: 600_000,
      onProgress: () => {
        setTimeout(() => {
          controller.abort(reason)
        }, 20)
      },
    })
    const outcome = await Promise.race([
      waiting.then(
        () => 'resolved',
        (error: unknown) => error,
      ),
      sleep(5_000).then(() => 'still sleeping'),
    ])
    expect(outcome).toBe(reason)
    expect(api.requests.length - before).toBe(1)
    statuses = []
  })
})

describe('exports.downloadFiles against a server that cuts a file short', () => {
  const ARTIFACT_BYTES = 1_000
  const FILE_NAME = 'binance_BTCUSDT_trade_part_2026110100.csv.gz'
  const CONTENT = Buffer.alloc(ARTIFACT_BYTES, 'x')
  let api: TestHttpServer
  let mode:
    | 'reset-mid'
    | 'short-content-length'
    | 'short-chunked'
    | 'whole'
    | 'stall-mid'
    | 'no-answer'
    | 'trickle' = 'whole'
  let directory: string

  beforeAll(async () => {
    api = await startTestHttpServer((request, response) => {
      if (request.url === `/v1/exports/${JOB.id}/download`) {
        sendJson(response, 200, {
          artifacts: [
            {
              id: 'art_1',
              url: `/files/${FILE_NAME}?sig=1`,
              bytes: ARTIFACT_BYTES,
              filename: FILE_NAME,
            },
          ],
          count: 1,
          total_bytes: ARTIFACT_BYTES,
        })
        return
      }
      const range = /^bytes=(\d+)-$/.exec(request.headers['range'] ?? '')
      if (mode === 'whole' && range !== null) {
        const from = Number(range[1])
        response.writeHead(206, {
          'content-length': String(ARTIFACT_BYTES - from),
          'content-range': `bytes ${String(from)}-${String(ARTIFACT_BYTES - 1)}/${String(ARTIFACT_BYTES)}`,
        })
        response.end(CONTENT.subarray(from))
      } else if (mode === 'whole') {
        response.writeHead(200, { 'content-length': String(ARTIFACT_BYTES) })
        response.end(CONTENT)
      } else if (mode === 'stall-mid') {
        // Some bytes, then nothing more, the connection left open.
        response.writeHead(200, { 'content-length': String(ARTIFACT_BYTES) })
        response.write(CONTENT.subarray(0, 300))
      } else if (mode === 'no-answer') {
        // Never answers at all.
      } else if (mode === 'trickle') {
        // A byte every 50 ms: never stalled, never done (1,000 bytes would take 50 s).
        response.writeHead(200, { 'content-length': String(ARTIFACT_BYTES) })
        const timer = setInterval(() => response.write('x'), 50)
        response.on('close', () => {
          clearInterval(timer)
        })
      } else if (mode === 'short-chunked') {
        // Chunked and ended cleanly: nothing on the wire says bytes are missing.
        response.writeHead(200)
        response.end(CONTENT.subarray(0, 300))
      } else {
        response.writeHead(
          200,
          mode === 'short-content-length' ? { 'content-length': String(ARTIFACT_BYTES) } : {},
        )
        response.write(CONTENT.subarray(0, 300))
        setTimeout(() => response.socket?.destroy(), 30)
      }
    })
  })
  afterAll(async () => {
    await api.close()
  })
  beforeEach(() => {
    directory = mkdtempSync(join(tmpdir(), 'ticksupply-short-'))
  })
  afterEach(() => {
    rmSync(directory, { recursive: true, force: true })
  })

  const client = () => createClient({ apiKey: 'library-key-0123456789', baseUrl: api.url })
  const fileRequests = () => api.requests.filter((request) => request.url.startsWith('/files/'))
  const listing = () =>
    readdirSync(directory).map((name) => [name, statSync(join(directory, name)).size])

  it.each(['reset-mid', 'short-content-length'] as const)(
    'throws a NetworkError when the connection drops mid-file (%s), keeping the .partial',
    async (failure) => {
      mode = failure
      const before = fileRequests().length

      const error: unknown = await client()
        .exports.downloadFiles(JOB.id, directory)
        .catch((e: unknown) => e)

      expect(error).toBeInstanceOf(NetworkError)
      expect(error).toMatchObject({ code: 'network_error', retryable: true })
      expect(listing()).toEqual([[`${FILE_NAME}.partial`, 300]])
      expect(fileRequests().length - before).toBe(1)
    },
  )

  it.each(['stall-mid', 'no-answer'] as const)(
    'gives up on a file that stalls (%s) after the timeout, keeping what came as .partial',
    async (stall) => {
      mode = stall
      const error: unknown = await createClient({
        apiKey: 'library-key-0123456789',
        baseUrl: api.url,
        timeoutMs: 300,
      })
        .exports.downloadFiles(JOB.id, directory)
        .catch((e: unknown) => e)

      expect(error).toBeInstanceOf(TimeoutError)
      expect(listing()).toEqual(stall === 'stall-mid' ? [[`${FILE_NAME}.partial`, 300]] : [])
    },
  )

  it('gives up on a download that moves but outlasts the deadline the call gave it', async () => {
    mode = 'trickle'
    const error: unknown = await client()
      .exports.downloadFiles(JOB.id, directory, { deadlineMs: 400 })
      .catch((e: unknown) => e)

    expect(error).toBeInstanceOf(TimeoutError)
    expect(listing()).toHaveLength(1)
    expect(listing()[0]?.[0]).toBe(`${FILE_NAME}.partial`)
  })

  it('refuses a file shorter than its artifact, leaving it as .partial for a resume', async () => {
    mode = 'short-chunked'
    const before = fileRequests().length

    const error: unknown = await client()
      .exports.downloadFiles(JOB.id, directory)
      .catch((e: unknown) => e)

    expect(error).toBeInstanceOf(UnexpectedResponseError)
    expect(error).toMatchObject({ code: 'unexpected_response', status: 200 })
    expect((error as Error).message).toContain('300')
    expect(listing()).toEqual([[`${FILE_NAME}.partial`, 300]])
    expect(fileRequests().length - before).toBe(1)

    // The next download asks for the rest only, and the file is whole under its own name.
    mode = 'whole'
    await client().exports.downloadFiles(JOB.id, directory)
    const requests = fileRequests().slice(before)
    expect(requests.map((request) => request.headers['range'])).toEqual([undefined, 'bytes=300-'])
    expect(listing()).toEqual([[FILE_NAME, ARTIFACT_BYTES]])
  })
})

describe('exports.downloadFiles against the server', () => {
  let server: RunningServer
  let directory: string
  let jobId: string

  beforeAll(async () => {
    server = await startServer({ accounts: ['files'], env: { EXPORT_POLL_MS: '50' } })
    directory = mkdtempSync(join(tmpdir(), 'ticksupply-files-'))
    const client = createClient({
      apiKey: server.apiKeys.get('files') ?? '',
      baseUrl: server.baseUrl,
    })
    const subscription = await client.subscriptions.create({ datastream_id: 1 })
    await sleep(2_100)
    await client.subscriptions.pause(subscription.id)
    const spans = await client.subscriptions.spans(subscription.id)
    const job: ExportJob = await client.exports.create({
      datastream_id: 1,
      start_time: spans[0]?.started_at ?? '',
      end_time: spans[0]?.ended_at ?? '',
    })
    jobId = (await client.exports.waitFor(job.id, { pollMs: 50 })).id
  })
  afterAll(async () => {
    await server.stop()
    rmSync(directory, { recursive: true, force: true })
  })

  it('saves every file, reporting files and bytes as they arrive', async () => {
    const client = createClient({
      apiKey: server.apiKeys.get('files') ?? '',
      baseUrl: server.baseUrl,
    })
    const progress: DownloadProgress[] = []
    const paths = await client.exports.downloadFiles(jobId, directory, {
      onProgress: (report) => progress.push(report),
    })
    const download = await client.exports.download(jobId)
    expect(paths.map((path) => path.slice(directory.length + 1))).toEqual(
      download.artifacts.map((artifact) => artifact.filename),
    )
    expect(readdirSync(directory).sort()).toEqual(
      download.artifacts.map((artifact) => artifact.filename).sort(),
    )
    const last = progress.at(-1)
    expect(last).toMatchObject({ bytes: download.total_bytes, totalBytes: download.total_bytes })
    expect(progress[0]?.fileBytes).toBe(0)
  })

  it('resumes a partial file with a Range request', async () => {
    const client = createClient({
      apiKey: server.apiKeys.get('files') ?? '',
      baseUrl: server.baseUrl,
    })
    const [artifact] = (await client.exports.download(jobId)).artifacts
    expect(artifact).toBeDefined()
    const target = join(directory, artifact!.filename)
    const whole = readFileSync(target)
    // An interrupted download: the first half is on disk as .partial, no final file.
    rmSync(target)
    writeFileSync(`${target}.partial`, whole)
    truncateSync(`${target}.partial`, Math.floor(whole.length / 2))
    const progress: DownloadProgress[] = []
    await client.exports.downloadFiles(jobId, directory, {
      onProgress: (report) => progress.push(report),
    })
    // It started from the half on disk, and the file is whole again.
    expect(progress[0]).toMatchObject({ file: 1, fileBytes: Math.floor(whole.length / 2) })
    expect(readFileSync(target).equals(whole)).toBe(true)
    expect(readdirSync(directory).some((name) => name.endsWith('.partial'))).toBe(false)
  })
})
