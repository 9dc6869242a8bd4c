/**
 * Signed downloads honour `Range`, so that a large file resumes where it broke off: one range is
 * a 206 with `Content-Range`, a range past the end a 416, anything this server does not serve
 * as ranges (several ranges, another unit, bad syntax, a stale `If-Range`) the whole file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from './support/server.js'
import { send, startServer } from './support/server.js'
import type { Download, ExportJob } from './support/exports-helpers.js'
import {
  EXPORT_ENV,
  createExport,
  datastreamOf,
  ns,
  recordSpan,
  waitForExport,
} from './support/exports-helpers.js'

let server: TestServer
let artifactUrl: string
let whole: Buffer

beforeAll(async () => {
  server = await startServer(EXPORT_ENV)
  const { url } = server
  const datastreamId = await datastreamOf(url, 'binance', 'SOLUSDT', 'trade')
  const span = await recordSpan(url, datastreamId)
  const created = await createExport(url, {
    datastream_id: datastreamId,
    start_time: ns(span.startMs - 1_000),
    end_time: ns(span.endMs + 1_000),
  })
  const job = await waitForExport(url, created.json<ExportJob>().id)
  expect(job.status).toBe('succeeded')
  const download = (await send(`${url}/v1/exports/${job.id}/download`)).json<Download>()
  const artifact = download.artifacts[0]!
  artifactUrl = artifact.url
  const response = await fetch(artifactUrl)
  whole = Buffer.from(await response.arrayBuffer())
  expect(whole.length).toBe(artifact.bytes)
  // Big enough for the ranges below to be proper parts of it.
  expect(whole.length).toBeGreaterThan(100)
})
afterAll(async () => {
  await server.close()
})

async function get(headers: Record<string, string>) {
  const response = await fetch(artifactUrl, { headers })
  return {
    status: response.status,
    headers: response.headers,
    body: Buffer.from(await response.arrayBuffer()),
  }
}

describe('a signed download', () => {
  it('says that it serves byte ranges, with a validator for If-Range', async () => {
    const answer = await get({})
    expect(answer.status).toBe(200)
    expect(answer.headers.get('accept-ranges')).toBe('bytes')
    expect(answer.headers.get('etag')).toMatch(/^"art_[0-9a-f]{32}"$/)
    expect(answer.body.equals(whole)).toBe(true)
  })

  it('answers one range with 206 and Content-Range, and a resumed download is the whole file', async () => {
    const first = await get({ range: 'bytes=0-49' })
    expect(first.status).toBe(206)
    expect(first.headers.get('content-range')).toBe(`bytes 0-49/${String(whole.length)}`)
    expect(first.headers.get('content-length')).toBe('50')
    expect(first.headers.get('content-type')).toBe('application/gzip')
    expect(first.body.equals(whole.subarray(0, 50))).toBe(true)

    const rest = await get({ range: 'bytes=50-' })
    expect(rest.status).toBe(206)
    expect(rest.headers.get('content-range')).toBe(
      `bytes 50-${String(whole.length - 1)}/${String(whole.length)}`,
    )
    expect(Buffer.concat([first.body, rest.body]).equals(whole)).toBe(true)
  })

  it('serves a suffix range and clips a range that runs past the end', async () => {
    const suffix = await get({ range: 'bytes=-30' })
    expect(suffix.status).toBe(206)
    expect(suffix.body.equals(whole.subarray(whole.length - 30))).toBe(true)

    for (const last of ['999999999', '99999999999999999999999']) {
      const long = await get({ range: `bytes=${String(whole.length - 10)}-${last}` })
      expect(long.status).toBe(206)
      expect(long.headers.get('content-range')).toBe(
        `bytes ${String(whole.length - 10)}-${String(whole.length - 1)}/${String(whole.length)}`,
      )
      expect(long.body.equals(whole.subarray(whole.length - 10))).toBe(true)
    }
    // A suffix longer than the file is the whole file, as a range; the unit in any case.
    const everything = await get({ range: 'BYTES=-99999999999999999999999' })
    expect(everything.status).toBe(206)
    expect(everything.body.equals(whole)).toBe(true)
  })

  it('answers 416 with the size for a range that starts at or past the end', async () => {
    for (const range of [
      `bytes=${String(whole.length)}-`,
      'bytes=999999999-1000000000',
      'bytes=-0',
      // Past 2^53, and past any number: still past the end.
      'bytes=9007199254740993-',
      'bytes=99999999999999999999999-',
    ]) {
      const answer = await get({ range })
      expect(answer.status, range).toBe(416)
      expect(answer.headers.get('content-range'), range).toBe(`bytes */${String(whole.length)}`)
      expect(JSON.parse(answer.body.toString('utf8')), range).toEqual({
        error: {
          code: 'invalid_argument',
          message: `Range not satisfiable: the file has ${String(whole.length)} bytes`,
        },
      })
    }
  })

  it('sends the whole file for what it does not serve as a range', async () => {
    for (const range of ['bytes=0-9,20-29', 'items=0-9', 'bytes=abc', 'bytes=50-10', 'bytes=-']) {
      const answer = await get({ range })
      expect(answer.status, range).toBe(200)
      expect(answer.body.equals(whole), range).toBe(true)
    }
  })

  it('honours If-Range: a range while the validator matches, else the whole file', async () => {
    const etag = (await get({})).headers.get('etag')!
    const matching = await get({ range: 'bytes=10-19', 'if-range': etag })
    expect(matching.status).toBe(206)
    expect(matching.body.equals(whole.subarray(10, 20))).toBe(true)

    const stale = await get({ range: 'bytes=10-19', 'if-range': '"art_something_else"' })
    expect(stale.status).toBe(200)
    expect(stale.body.equals(whole)).toBe(true)
  })

  it('checks the signature before any range', async () => {
    const forged = artifactUrl.replace(/sig=[^&]+/, 'sig=AAAA')
    const answer = await fetch(forged, { headers: { range: 'bytes=0-9' } })
    expect(answer.status).toBe(403)
  })
})
