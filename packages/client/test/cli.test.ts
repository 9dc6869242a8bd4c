import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from './support/free-port.js'
import { REPO_ROOT } from './support/repo-root.js'
import type { RunningServer } from './support/server-process.js'
import { startServer } from './support/server-process.js'
import type { TestHttpServer } from './support/test-http-server.js'
import { sendError, sendJson, startTestHttpServer } from './support/test-http-server.js'

const MAIN = join(REPO_ROOT, 'packages/client/dist/cli/main.js')

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs the command line as a user would, with only the given settings in its environment. */
async function ticksupply(
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  command: readonly string[] = [process.execPath, MAIN],
): Promise<Run> {
  const [file = '', ...prefix] = command
  const child = spawn(file, [...prefix, ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const [code] = (await once(child, 'close')) as [number | null]
  return { code, stdout, stderr }
}

let server: RunningServer
let env: Record<string, string>
beforeAll(async () => {
  server = await startServer({ accounts: ['cli', 'cli2'] })
  env = {
    TICKSUPPLY_BASE_URL: server.baseUrl,
    TICKSUPPLY_API_KEY: server.apiKeys.get('cli') ?? '',
  }
})
afterAll(async () => {
  await server.stop()
})

describe('ticksupply against the server', () => {
  it('lists the exchanges as a table', async () => {
    const run = await ticksupply(['exchanges', 'list'], env)

    expect(run).toMatchObject({ code: 0, stderr: '' })
    const lines = run.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^CODE\s+NAME$/)
    expect(lines.slice(1).map((line) => line.split(/\s+/)[0])).toEqual([
      'binance',
      'coinbase',
      'bybit_spot',
      'bybit_linear',
    ])
  })

  it('prints JSON with --json, from the options wherever they stand', async () => {
    const run = await ticksupply(['--json', 'exchanges', 'list'], env)

    expect(run.code).toBe(0)
    const exchanges = JSON.parse(run.stdout) as { code: string }[]
    expect(exchanges).toHaveLength(4)
  })

  it('filters datastreams and reads every page', async () => {
    const run = await ticksupply(
      [
        'datastreams',
        'list',
        '--exchange',
        'binance',
        '--stream-type',
        'trade',
        '--limit',
        '7',
        '--json',
      ],
      env,
    )

    expect(run.code).toBe(0)
    const datastreams = JSON.parse(run.stdout) as { exchange: string; stream_type: string }[]
    // Binance has 40 instruments, each with one trade stream: six pages of 7.
    expect(datastreams).toHaveLength(40)
    expect(datastreams.every((d) => d.exchange === 'binance' && d.stream_type === 'trade')).toBe(
      true,
    )
  })

  it('searches instruments by prefix', async () => {
    const run = await ticksupply(
      ['instruments', 'list', '--exchange', 'binance', '--search', 'btc'],
      env,
    )

    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/^SYMBOL\s+BASE\s+QUOTE\s+TYPE\n/)
    expect(
      run.stdout
        .trimEnd()
        .split('\n')
        .slice(1)
        .map((line) => line.split(/\s+/)[0]),
    ).toEqual(expect.arrayContaining(['BTCUSDT', 'BTCUSDC']))
  })

  it('walks a subscription through create, list, pause, spans, resume and delete', async () => {
    const created = await ticksupply(
      ['subscriptions', 'create', '--datastream', '11', '--json'],
      env,
    )
    expect(created.code).toBe(0)
    const { id } = JSON.parse(created.stdout) as { id: string }
    expect(id).toMatch(/^sub_[0-9a-f]{32}$/)

    const listed = await ticksupply(['subscriptions', 'list'], env)
    expect(listed.stdout).toContain(id)
    expect(listed.stdout.trimEnd().split('\n')).toHaveLength(2)

    expect(await ticksupply(['subscriptions', 'pause', id], env)).toMatchObject({
      code: 0,
      stdout: `Paused ${id}\n`,
    })
    const spans = await ticksupply(['subscriptions', 'spans', id, '--json'], env)
    const [span] = JSON.parse(spans.stdout) as { ended_at: string | null }[]
    expect(span?.ended_at).not.toBeNull()
    expect((await ticksupply(['subscriptions', 'resume', id], env)).stdout).toBe(`Resumed ${id}\n`)
    expect((await ticksupply(['subscriptions', 'delete', id], env)).stdout).toBe(`Deleted ${id}\n`)

    const shown = await ticksupply(['subscriptions', 'get', id], env)
    expect(shown.code).toBe(0)
    expect(shown.stdout).toMatch(/^Status\s+deleted$/m)
  })

  it('exits 7 with the request id for an unknown subscription', async () => {
    const run = await ticksupply(
      ['subscriptions', 'get', 'sub_00000000000000000000000000000000'],
      env,
    )

    expect(run.code).toBe(7)
    expect(run.stdout).toBe('')
    expect(run.stderr).toMatch(/\[not_found\] \(HTTP 404, request req_[0-9a-f]{16}\)/)
  })

  it('sends a datastream id past 2^53 exact: the server names the one it was sent', async () => {
    const run = await ticksupply(
      ['subscriptions', 'create', '--datastream', '9007199254740993', '--json'],
      env,
    )

    expect(run.code).toBe(7)
    expect(JSON.parse(run.stderr)).toMatchObject({
      error: { code: 'not_found', message: 'Datastream 9007199254740993 not found' },
    })
  })

  it('exits 8 for a second subscription to the same datastream', async () => {
    expect((await ticksupply(['subscriptions', 'create', '--datastream', '12'], env)).code).toBe(0)

    const run = await ticksupply(['subscriptions', 'create', '--datastream', '12', '--json'], env)

    expect(run.code).toBe(8)
    expect(JSON.parse(run.stderr)).toMatchObject({ error: { code: 'already_exists', status: 409 } })
  })

  it('exits 9 when an idempotency key is reused for another request', async () => {
    const key = '5b0cc6c4-3f4f-4d7e-9b1e-0b8a3c7f2a10'
    const asOther = { ...env, TICKSUPPLY_API_KEY: server.apiKeys.get('cli2') ?? '' }
    const first = await ticksupply(
      ['subscriptions', 'create', '--datastream', '13', '--idempotency-key', key],
      asOther,
    )
    expect(first.code).toBe(0)

    const again = await ticksupply(
      ['subscriptions', 'create', '--datastream', '13', '--idempotency-key', key, '--json'],
      asOther,
    )
    expect(again.code).toBe(0)
    const other = await ticksupply(
      ['subscriptions', 'create', '--datastream', '14', '--idempotency-key', key],
      asOther,
    )
    expect(other.code).toBe(9)
    expect(other.stderr).toContain('Idempotency key reused with different request parameters')
    const list = await ticksupply(['subscriptions', 'list', '--json'], asOther)
    expect(JSON.parse(list.stdout)).toHaveLength(1)
  })

  it('exits 4 for a wrong API key', async () => {
    const run = await ticksupply(['exchanges', 'list'], {
      ...env,
      TICKSUPPLY_API_KEY: 'wrong-key-0123456789',
    })

    expect(run.code).toBe(4)
    expect(run.stderr).toContain('Invalid or missing API key')
  })

  it('creates, drafts, publishes and deletes an export schema from JSON files', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'ticksupply-schema-'))
    try {
      const column = (name: string, format: string) => ({
        output_column: name,
        meta: { value: 'collection_timestamp_ns', format },
      })
      const schemaFile = join(directory, 'schema.json')
      writeFileSync(
        schemaFile,
        JSON.stringify({ name: 'cli', stream_category: 'trade', columns: [column('ts', 'ms')] }),
      )
      const draftFile = join(directory, 'draft.json')
      writeFileSync(draftFile, JSON.stringify({ columns: [column('ts', 'ms'), column('t', 's')] }))

      const created = await ticksupply(['schemas', 'create', '--file', schemaFile, '--json'], env)
      expect(created.code).toBe(0)
      const { id } = JSON.parse(created.stdout) as { id: string }
      expect((await ticksupply(['schemas', 'draft', id, '--file', draftFile], env)).stdout).toBe(
        `Draft of ${id} with 2 columns\n`,
      )
      const published = await ticksupply(['schemas', 'publish', id], env)
      expect(published.stdout).toMatch(/^Version\s+2$/m)
      expect(published.stdout).toMatch(/^Columns\s+ts, t$/m)
      const listed = await ticksupply(['schemas', 'list'], env)
      expect(listed.stdout).toMatch(new RegExp(`^${id}\\s+cli\\s+trade\\s+2\\s+no\\s+no$`, 'm'))
      expect((await ticksupply(['schemas', 'delete', id], env)).stdout).toBe(`Deleted ${id}\n`)
      expect((await ticksupply(['schemas', 'get', id], env)).code).toBe(7)
    } finally {
      rmSync(directory, { recursive: true, force: true })
    }
  })

  it("shows the account's billing summary", async () => {
    const run = await ticksupply(['billing', 'summary'], env)

    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/^Access status\s+ACTIVE$/m)
    expect(run.stdout).toMatch(/^Export GB\s+0(\.0+)?$/m)
  })

  it('takes --api-key and --base-url over the environment', async () => {
    const run = await ticksupply(
      [
        'exchanges',
        'list',
        '--base-url',
        server.baseUrl,
        '--api-key',
        server.apiKeys.get('cli') ?? '',
      ],
      { TICKSUPPLY_BASE_URL: 'http://127.0.0.1:9', TICKSUPPLY_API_KEY: 'wrong-key-0123456789' },
    )

    expect(run.code).toBe(0)
  })

  it('runs as `npx ticksupply` from the repository root', async () => {
    const run = await ticksupply(['exchanges', 'list', '--json'], env, [
      'npx',
      '--no',
      'ticksupply',
    ])

    expect(run.code).toBe(0)
    expect(JSON.parse(run.stdout)).toHaveLength(4)
  })
})

describe('ticksupply used wrongly', () => {
  it.each([
    [['nothing', 'list'], 'unknown resource "nothing"'],
    [['subscriptions', 'frobnicate'], 'unknown verb "frobnicate"'],
    [['subscriptions', 'get'], 'subscriptions get needs ID'],
    [['subscriptions', 'create'], '--datastream is required'],
    [['subscriptions', 'create', '--datastream', 'x'], '--datastream must be a whole number'],
    [['exchanges', 'list', '--exchange', 'binance'], 'exchanges list takes no --exchange'],
    [['exchanges', 'list', '--bogus'], "Unknown option '--bogus'"],
    [['exchanges', 'list', '--base-url', 'nope'], '`baseUrl`'],
  ])('exits 2 for %j', async (args, message) => {
    const run = await ticksupply(args, env)

    expect(run.code).toBe(2)
    expect(run.stderr).toContain(message)
  })

  it('exits 2 without an API key', async () => {
    const run = await ticksupply(['exchanges', 'list'], { TICKSUPPLY_BASE_URL: server.baseUrl })

    expect(run.code).toBe(2)
    expect(run.stderr).toContain('no API key')
  })

  it('prints help with --help and exits 0', async () => {
    const run = await ticksupply(['subscriptions', 'create', '--help'], {})

    expect(run.code).toBe(0)
    expect(run.stdout).toContain('Usage: ticksupply subscriptions create')
    expect(run.stdout).toContain('--idempotency-key UUID')
  })

  it('exits 16 when nothing listens at the base URL', async () => {
    const port = await freePort()
    const run = await ticksupply(['exchanges', 'list'], {
      ...env,
      TICKSUPPLY_BASE_URL: `http://127.0.0.1:${String(port)}`,
    })

    expect(run.code).toBe(16)
    expect(run.stderr).toContain('[network_error]')
  })
})

describe('ticksupply exports, schemas and billing', () => {
  let api: TestHttpServer
  let apiEnv: Record<string, string>
  const JOB = {
    id: 'exp_0000000000000000000000000000000a',
    datastream_id: 5,
    start_time: 1793491200000000000,
    end_time: 1793494800000000000,
    format: 'csv',
    format_options: {},
    status: 'queued',
    created_at: '2026-11-01T00:00:00Z',
    started_at: null,
    finished_at: null,
  }
  const FILE = 'binance_BTCUSDT_trade_part_2026110100.csv.gz'
  let subscriptionsDown = true

  beforeAll(async () => {
    let polls = 0
    api = await startTestHttpServer((request, response) => {
      const route = `${request.method} ${request.url}`
      if (route === 'POST /v1/exports') sendJson(response, 202, JOB)
      else if (route === `GET /v1/exports/${JOB.id}`) {
        polls += 1
        sendJson(response, 200, { ...JOB, status: polls < 2 ? 'running' : 'succeeded' })
      } else if (route === `GET /v1/exports/${JOB.id}/download`) {
        sendJson(response, 200, {
          artifacts: [{ id: 'art_1', url: `/files/${FILE}?sig=abc`, bytes: 11, filename: FILE }],
          count: 1,
          total_bytes: 11,
        })
      } else if (route === `GET /files/${FILE}?sig=abc`) {
        // A signed link: it must arrive without the API key.
        response.writeHead(request.headers['x-api-key'] === undefined ? 200 : 403)
        response.end('hello world')
      } else if (route === 'GET /v1/billing/summary') {
        sendJson(response, 200, {
          access_status: 'SUSPENDED',
          usage: { extra_stream_minutes_total: 12, export_gb_total: '1.500', export_gb_extra: 0 },
          grace_until: null,
          plan_code: 'starter',
          current_period_end: '2026-12-01T00:00:00Z',
        })
      } else if (route === 'POST /v1/subscriptions') {
        if (subscriptionsDown) sendError(response, 503, 'unavailable', 'database down')
        else {
          sendJson(response, 201, {
            id: 'sub_1',
            datastream_id: 5,
            status: 'active',
            created_at: '2026-11-29T08:00:00Z',
            datastream: {
              datastream_id: 5,
              exchange: 'binance',
              instrument: 'ETHUSDT',
              stream_type: 'trade',
              wire_format: 'json',
            },
            spans: [],
          })
        }
      } else if (route === 'POST /v1/exports/exp_b/cancel') {
        sendError(response, 400, 'invalid_argument', 'Export exp_b has already finished')
      } else if (route === 'GET /v1/export-schemas') {
        sendJson(response, 200, [
          {
            id: 'sch_raw',
            name: 'raw',
            stream_category: 'trade',
            is_built_in: true,
            created_at: '2026-01-01T00:00:00Z',
            version: 1,
            has_draft: false,
            columns: [],
          },
        ])
      } else sendError(response, 404, 'not_found', `No route ${route}`)
    })
    apiEnv = { TICKSUPPLY_BASE_URL: api.url, TICKSUPPLY_API_KEY: 'cli-test-key-0123456789' }
  })
  afterAll(async () => {
    await api.close()
  })

  it('creates an export, waits for it and downloads its files', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'ticksupply-download-'))
    try {
      const run = await ticksupply(
        [
          'exports',
          'create',
          '--datastream',
          '5',
          '--start',
          '2026-11-01T00:00:00Z',
          '--end',
          '2026-11-01T01:00:00Z',
          '--download',
          directory,
        ],
        apiEnv,
      )

      expect(run.code).toBe(0)
      expect(run.stdout).toMatch(/^Status\s+succeeded$/m)
      expect(run.stdout).toMatch(/^Range\s+2026-11-01T00:00:00.000Z .. 2026-11-01T01:00:00.000Z$/m)
      expect(readdirSync(directory)).toEqual([FILE])
      expect(readFileSync(join(directory, FILE), 'utf8')).toBe('hello world')
      const posted = api.requests.filter((request) => request.method === 'POST')
      expect(posted).toHaveLength(1)
      expect(JSON.parse(posted[0]?.body ?? '{}')).toEqual({
        datastream_id: 5,
        start_time: '2026-11-01T00:00:00Z',
        end_time: '2026-11-01T01:00:00Z',
      })
      expect(posted[0]?.headers['idempotency-key']).toMatch(/^[0-9a-f-]{36}$/)
    } finally {
      rmSync(directory, { recursive: true, force: true })
    }
  })

  it('resumes an operation with --operation-id after a run that gave up', async () => {
    const keyStore = mkdtempSync(join(tmpdir(), 'ticksupply-cli-keys-'))
    const args = ['subscriptions', 'create', '--datastream', '5', '--operation-id', 'sub-5']
    try {
      const gaveUp = await ticksupply([...args, '--key-store', keyStore], apiEnv)
      expect(gaveUp.code).toBe(14)
      expect(readdirSync(keyStore)).toHaveLength(1)

      subscriptionsDown = false
      const done = await ticksupply(args, { ...apiEnv, TICKSUPPLY_KEY_STORE: keyStore })
      expect(done.code).toBe(0)

      const keys = api.requests
        .filter((request) => request.url === '/v1/subscriptions')
        .map((request) => request.headers['idempotency-key'])
      expect(keys.length).toBeGreaterThanOrEqual(2)
      expect(new Set(keys).size).toBe(1)
      expect(readdirSync(keyStore)).toHaveLength(0)
    } finally {
      rmSync(keyStore, { recursive: true, force: true })
    }
  })

  it('shows the billing summary', async () => {
    const run = await ticksupply(['billing', 'summary'], apiEnv)

    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/^Access status\s+SUSPENDED$/m)
    expect(run.stdout).toMatch(/^Plan\s+starter$/m)
  })

  it('lists schemas', async () => {
    const run = await ticksupply(['schemas', 'list'], apiEnv)

    expect(run.code).toBe(0)
    expect(run.stdout.split('\n')[1]).toMatch(/^sch_raw\s+raw\s+trade\s+1\s+yes\s+no$/)
  })

  it('exits 3 when an export cannot be canceled any more', async () => {
    const run = await ticksupply(['exports', 'cancel', 'exp_b'], apiEnv)

    expect(run.code).toBe(3)
    expect(run.stderr).toContain('Export exp_b has already finished [invalid_argument]')
  })
})
