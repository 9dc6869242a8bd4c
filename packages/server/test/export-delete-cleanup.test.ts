/**
 * `DELETE /v1/exports/{id}` commits (and stores) its 204 before it removes the files. When the
 * files cannot be removed then, the answer stays the 204 that was committed: the failure is
 * logged and the removal retried in the background.
 *
 * The folder is made undeletable for real, with the immutable attribute (`chattr +i`), which
 * stops even root from removing what is inside it.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from './support/server.js'
import { eventually, newKey, send, startServer } from './support/server.js'
import type { ExportJob } from './support/exports-helpers.js'
import {
  EXPORT_ENV,
  createExport,
  datastreamOf,
  ns,
  recordSpan,
  waitForExport,
} from './support/exports-helpers.js'

let server: TestServer

beforeAll(async () => {
  server = await startServer(EXPORT_ENV)
})
afterAll(async () => {
  await server.close()
})

function setImmutable(path: string, immutable: boolean): void {
  execFileSync('chattr', [immutable ? '+i' : '-i', path])
}

describe('deleting an export whose files cannot be removed at once', () => {
  it('answers the committed 204, replays it, and removes the files once it can', async () => {
    const { url } = server
    const datastreamId = await datastreamOf(url, 'binance', 'ETHUSDT', 'trade')
    const span = await recordSpan(url, datastreamId)
    const created = await createExport(url, {
      datastream_id: datastreamId,
      start_time: ns(span.startMs - 1_000),
      end_time: ns(span.endMs + 1_000),
    })
    expect(created.status, created.text).toBe(202)
    const job = await waitForExport(url, created.json<ExportJob>().id)
    expect(job.status).toBe('succeeded')
    const folder = join(server.artifactsDir, 'exports', job.id)
    expect(existsSync(folder)).toBe(true)

    const key = newKey()
    setImmutable(folder, true)
    try {
      const deleted = await send(`${url}/v1/exports/${job.id}`, { method: 'DELETE', key })
      expect(deleted.status, deleted.text).toBe(204)
      expect(deleted.text).toBe('')
      const replayed = await send(`${url}/v1/exports/${job.id}`, { method: 'DELETE', key })
      expect(replayed.status).toBe(204)
      expect(replayed.headers.get('idempotent-replayed')).toBe('true')
      expect((await send(`${url}/v1/exports/${job.id}`)).status).toBe(404)
      // Nothing could be removed while the folder was immutable.
      expect(existsSync(folder)).toBe(true)
    } finally {
      setImmutable(folder, false)
    }
    // The background retry removes it now that it can.
    expect(await eventually(() => !existsSync(folder), { attempts: 300, intervalMs: 100 })).toBe(
      true,
    )
  })
})
