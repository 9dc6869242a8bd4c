import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { InvalidArgumentError, NotFoundError, createClient } from '../src/index.js'
import type { ExportJob, TicksupplyClient } from '../src/index.js'
import type { FaultProxy } from './support/fault-proxy.js'
import { startFaultProxy } from './support/fault-proxy.js'
import { REPO_ROOT } from './support/repo-root.js'
import type { RunningServer } from './support/server-process.js'
import { startServer } from './support/server-process.js'

const MAIN = join(REPO_ROOT, 'packages/client/dist/cli/main.js')

let server: RunningServer
let proxy: FaultProxy
let client: TicksupplyClient
let apiKey: string

beforeAll(async () => {
  server = await startServer({ accounts: ['exporter'] })
  apiKey = server.apiKeys.get('exporter') ?? ''
  // The first answer to each change is lost on its way back.
  const answered = new Set<string>()
  proxy = await startFaultProxy({
    targetPort: server.port,
    chooseFault: ({ method, path }) => {
      if (method === 'GET') return 'pass'
      const seen = answered.has(`${method} ${path}`)
      answered.add(`${method} ${path}`)
      return seen ? 'pass' : 'drop-response'
    },
  })
  client = createClient({ apiKey, baseUrl: proxy.url, retry: { baseDelayMs: 1, maxDelayMs: 10 } })
})
afterAll(async () => {
  await proxy.close()
  await server.stop()
})

async function cli(
  args: readonly string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: {
      PATH: process.env['PATH'] ?? '',
      TICKSUPPLY_BASE_URL: proxy.url,
      TICKSUPPLY_API_KEY: apiKey,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const [code] = (await once(child, 'close')) as [number | null]
  return { code, stdout, stderr }
}

describe('an export of recorded data', () => {
  it('is created once, waited for, downloaded, and deleted once, with lost answers', async () => {
    const subscription = await client.subscriptions.create({ datastream_id: 1 })
    // The default recorder source makes one message a second: let a few accrue.
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    const end = new Date().toISOString()
    const directory = mkdtempSync(join(tmpdir(), 'ticksupply-export-'))
    try {
      const run = await cli([
        'exports',
        'create',
        '--datastream',
        '1',
        '--start',
        subscription.created_at,
        '--end',
        end,
        '--download',
        directory,
        '--json',
      ])

      expect(run.stderr).toBe('')
      expect(run.code).toBe(0)
      const job = JSON.parse(run.stdout) as ExportJob
      expect(job.status).toBe('succeeded')
      // The range survives as exact nanoseconds, printed as the API writes them: bare integers.
      const startNs = String(BigInt(Date.parse(subscription.created_at)) * 1_000_000n)
      expect(run.stdout).toContain(`"start_time": ${startNs},`)
      expect(run.stdout).toMatch(/"end_time": \d{19},/)
      const files = readdirSync(directory)
      expect(files.length).toBeGreaterThanOrEqual(1)
      for (const file of files) {
        expect(file).toMatch(/^binance_[A-Z]+_[a-z_]+_part_\d{10}\.csv\.gz$/)
      }
      const rows = files.flatMap((file) =>
        gunzipSync(readFileSync(join(directory, file)))
          .toString('utf8')
          .trim()
          .split('\n')
          .slice(1),
      )
      expect(rows.length).toBeGreaterThanOrEqual(1)

      // One job despite the lost 202.
      expect((await client.exports.list()).total).toBe(1)
      await expect(client.exports.cancel(job.id)).rejects.toBeInstanceOf(InvalidArgumentError)
      await client.exports.delete(job.id)
      await expect(client.exports.get(job.id)).rejects.toBeInstanceOf(NotFoundError)
      expect((await client.exports.list()).total).toBe(0)
      const deletes = proxy.requests.filter((request) => request.method === 'DELETE')
      expect(deletes.map((request) => [request.upstreamStatus, request.upstreamReplayed])).toEqual([
        [204, false],
        [204, true],
      ])
    } finally {
      rmSync(directory, { recursive: true, force: true })
    }
  })
})
