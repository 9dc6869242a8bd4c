import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SpawnedServer } from './support/server.js'
import { eventually, freshDatabase, queryDatabase, send, spawnServer } from './support/server.js'
import {
  EXPORT_ENV,
  fetchArtifacts,
  parseCsvGz,
  startRunningExport,
  waitForExport,
} from './support/exports-helpers.js'

// Runs the built server (`npx tsc -b` first): packages/server/dist/main.js. On SQLite the second
// server is a restart on the same file; on PostgreSQL it is another instance taking over.
let database: Awaited<ReturnType<typeof freshDatabase>>
const running: SpawnedServer[] = []

beforeAll(async () => {
  database = await freshDatabase()
})

afterAll(() => {
  for (const child of running) child.kill('SIGKILL')
  database.cleanup()
})

async function spawn(env: Record<string, string>): Promise<SpawnedServer> {
  const child = await spawnServer({
    ...EXPORT_ENV,
    DATABASE_URL: database.url,
    ARTIFACTS_DIR: join(database.dir, 'artifacts'),
    ...env,
  })
  running.push(child)
  return child
}

async function exportRow(id: string): Promise<{ status: string; attempts: number }> {
  const [row] = await queryDatabase<{ status: string; attempts: number | string }>(
    database.url,
    'SELECT status, attempts FROM exports WHERE id = ?',
    [id],
  )
  return { status: row?.status ?? 'missing', attempts: Number(row?.attempts) }
}

describe('an export whose server is killed while it runs', () => {
  it('is taken over after a restart and finishes exactly once', async () => {
    // The first server's worker stalls for a minute between writing its files and committing
    // them: plenty of time to kill it in the worst place.
    const first = await spawn({ TICKSUPPLY_TEST_EXPORT_DELAY_MS: '60000', EXPORT_LEASE_MS: '1000' })
    const id = await startRunningExport(first.url, 2_100)
    const folder = join(database.dir, 'artifacts', 'exports', id)
    const written = () => {
      try {
        return readdirSync(folder).some((attempt) => readdirSync(join(folder, attempt)).length > 0)
      } catch {
        return false
      }
    }
    expect(await eventually(written)).toBe(true)
    first.kill('SIGKILL')
    expect((await first.exited).signal).toBe('SIGKILL')
    expect(await exportRow(id)).toEqual({ status: 'running', attempts: 1 })
    // It died with its files written but not committed: they are in its own attempt's folder.
    const orphaned = readdirSync(folder)
    expect(orphaned).toHaveLength(1)
    expect(readdirSync(join(folder, orphaned[0] ?? '')).length).toBeGreaterThanOrEqual(1)

    // Restarted on the same file: the lease lapses within a second and the job is claimed again.
    const second = await spawn({ EXPORT_LEASE_MS: '1000' })
    const job = await waitForExport(second.url, id)
    expect(job.status).toBe('succeeded')
    expect(await exportRow(id)).toEqual({ status: 'succeeded', attempts: 2 })

    const { download, files } = await fetchArtifacts(second.url, id)
    const filenames = download.artifacts.map((artifact) => artifact.filename)
    expect(new Set(filenames).size).toBe(filenames.length)
    expect(
      filenames.every((name) => /^bybit_spot_BTCUSDT_trade_part_\d{10}\.csv\.gz$/.test(name)),
    ).toBe(true)
    // One set of files on disk: the folder of the finishing attempt only.
    const folders = readdirSync(folder)
    expect(folders).toHaveLength(1)
    expect(folders[0]).not.toBe(orphaned[0])
    const rows = files.flatMap((file) => parseCsvGz(file.bytes).slice(1))
    expect(rows.length).toBeGreaterThanOrEqual(1)

    // Nothing runs it again: a while later it is still the one finished attempt.
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    expect(await exportRow(id)).toEqual({ status: 'succeeded', attempts: 2 })
    const again = await send(`${second.url}/v1/exports/${id}/download`)
    expect(again.json<{ count: number }>().count).toBe(download.count)
    second.kill('SIGTERM')
    await second.exited
  })
})
