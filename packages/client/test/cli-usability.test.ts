/**
 * The command line as a person uses it: `--version`, help when run bare, local mistakes as one
 * clear line with their documented exit code (never a stack trace), the existing id in a 409,
 * `--max`, int64 times as numbers in `--json`, and progress while waiting and downloading (on
 * a terminal only). Each case runs `ticksupply` as a process, as a user would.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import type { ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLIENT_ROOT, REPO_ROOT } from './support/repo-root.js'
import type { RunningServer } from './support/server-process.js'
import { startServer } from './support/server-process.js'
import type { TestHttpServer } from './support/test-http-server.js'
import { sendJson, startTestHttpServer } from './support/test-http-server.js'

const MAIN = join(REPO_ROOT, 'packages/client/dist/cli/main.js')

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

async function ticksupply(args: readonly string[], env: Record<string, string>): Promise<Run> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  // A command that never ends (a list that loops) fails its test instead of outliving it.
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const [code] = (await once(child, 'close')) as [number | null]
  clearTimeout(timer)
  return { code, stdout, stderr }
}

/** Runs it on a pseudo-terminal (util-linux `script`), where a person would see progress. */
async function onTerminal(args: readonly string[], env: Record<string, string>): Promise<Run> {
  const command = [process.execPath, MAIN, ...args].map((part) => `'${part}'`).join(' ')
  const child = spawn('script', ['-qec', command, '/dev/null'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  const [code] = (await once(child, 'close')) as [number | null]
  // On a terminal stdout and stderr are one stream.
  return { code, stdout, stderr: stdout }
}

const STACK_LINE = /^\s+at /m

const JOB = {
  id: 'exp_0000000000000000000000000000000c',
  datastream_id: 5,
  start_time: 0,
  end_time: 0,
  format: 'csv',
  format_options: {},
  status: 'queued',
  created_at: '2026-11-01T00:00:00Z',
  started_at: null,
  finished_at: null,
}
const FILE = 'binance_BTCUSDT_trade_part_2026110100.csv.gz'
// int64 nanoseconds past 2^53, as the server writes them.
const jobText = (status: string) =>
  JSON.stringify({ ...JOB, status })
    .replace('"start_time":0', '"start_time":1793491200000000001')
    .replace('"end_time":0', '"end_time":1793494800000000000')

let api: TestHttpServer
let apiEnv: Record<string, string>
let polls = 0

beforeAll(async () => {
  api = await startTestHttpServer((request, response) => {
    const route = `${request.method} ${request.url.split('?')[0] ?? ''}`
    if (route === 'POST /v1/exports') {
      polls = 0
      response.writeHead(202, { 'content-type': 'application/json' })
      response.end(jobText('queued'))
    } else if (route === `GET /v1/exports/${JOB.id}`) {
      polls += 1
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end(jobText(polls < 3 ? 'running' : 'succeeded'))
    } else if (route === `GET /v1/exports/${JOB.id}/download`) {
      sendJson(response, 200, {
        artifacts: [{ id: 'art_1', url: `/files/${FILE}?sig=abc`, bytes: 11, filename: FILE }],
        count: 1,
        total_bytes: 11,
      })
    } else if (route === `GET /files/${FILE}`) {
      response.writeHead(200, { 'content-length': '11' })
      response.end('hello world')
    } else if (route === 'GET /v1/datastreams') {
      const page = new URL(request.url, 'http://x').searchParams.get('page_token') ?? '0'
      const start = Number(page) * 2
      sendJson(response, 200, {
        items: [start + 1, start + 2].map((id) => ({
          datastream_id: id,
          exchange: 'binance',
          instrument: 'BTCUSDT',
          stream_type: 'trade',
          wire_format: 'json',
        })),
        total: 100,
        limit: 2,
        next_page_token: String(Number(page) + 1),
      })
    } else sendJson(response, 404, { error: { code: 'not_found', message: `No ${route}` } })
  })
  apiEnv = { TICKSUPPLY_BASE_URL: api.url, TICKSUPPLY_API_KEY: 'usability-key-0123456789' }
})
afterAll(async () => {
  await api.close()
})

describe('ticksupply for a person', () => {
  it('prints its version with --version', async () => {
    const manifest = JSON.parse(readFileSync(join(CLIENT_ROOT, 'package.json'), 'utf8')) as {
      version: string
    }
    const run = await ticksupply(['--version'], {})
    expect(run).toEqual({ code: 0, stdout: `ticksupply ${manifest.version}\n`, stderr: '' })
  })

  it('prints the help when run bare', async () => {
    const run = await ticksupply([], {})
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/^Usage: ticksupply <resource> <verb>/)
    expect(run.stdout).toContain('--version')
    expect(run.stderr).toBe('')
  })

  it('refuses a bad --idempotency-key in one line, with exit 2 and nothing sent', async () => {
    const before = api.requests.length
    const run = await ticksupply(
      ['subscriptions', 'create', '--datastream', '5', '--idempotency-key', 'not-a-uuid'],
      apiEnv,
    )
    expect(run.code).toBe(2)
    expect(run.stderr.split('\n')[0]).toBe(
      'ticksupply: --idempotency-key must be a UUID (hyphenated, simple, braced or urn:uuid:), got "not-a-uuid"',
    )
    expect(run.stderr).not.toMatch(STACK_LINE)
    expect(api.requests.length).toBe(before)
  })

  it('names a --file it cannot read in one line, with exit 19', async () => {
    const missing = join(tmpdir(), 'ticksupply-no-such-schema.json')
    const run = await ticksupply(['schemas', 'create', '--file', missing], apiEnv)
    expect(run.code).toBe(19)
    expect(run.stderr).toBe(
      `ticksupply: cannot read ${missing}: no such file or directory (ENOENT)\n`,
    )
  })

  it('names a --dir it cannot write into in one line, with exit 19', async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'ticksupply-dir-'))
    try {
      // A regular file where a folder must be: even root cannot make a folder inside it.
      const blocker = join(scratch, 'not-a-folder')
      writeFileSync(blocker, '')
      const run = await ticksupply(
        ['exports', 'download', JOB.id, '--dir', join(blocker, 'out')],
        apiEnv,
      )
      expect(run.code).toBe(19)
      expect(run.stderr).toBe(
        `ticksupply: cannot write into ${join(blocker, 'out')}: a part of the path is not a directory (ENOTDIR)\n`,
      )
    } finally {
      rmSync(scratch, { recursive: true, force: true })
    }
  })

  it('stops a list after --max items, reading no page beyond them', async () => {
    const before = api.requests.length
    const run = await ticksupply(
      ['datastreams', 'list', '--limit', '2', '--max', '3', '--json'],
      apiEnv,
    )
    expect(run.code).toBe(0)
    const items = JSON.parse(run.stdout) as { datastream_id: number }[]
    expect(items.map((item) => item.datastream_id)).toEqual([1, 2, 3])
    // Two pages of two hold the three; the list has 50 pages.
    expect(api.requests.length - before).toBe(2)
    expect((await ticksupply(['datastreams', 'list', '--max', '0'], apiEnv)).code).toBe(2)
  })

  it('prints int64 times as numbers with --json, like the API', async () => {
    const run = await ticksupply(['exports', 'get', JOB.id, '--json'], apiEnv)
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('"start_time": 1793491200000000001,')
    expect(run.stdout).toContain('"end_time": 1793494800000000000,')
  })
})

describe('progress while waiting for an export', () => {
  const create = (extra: readonly string[]) => [
    'exports',
    'create',
    '--datastream',
    '5',
    '--start',
    '2026-11-01T00:00:00Z',
    '--end',
    '2026-11-01T01:00:00Z',
    ...extra,
  ]

  it('shows status, elapsed time, files and bytes on a terminal', async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'ticksupply-progress-'))
    try {
      const run = await onTerminal(create(['--download', scratch]), apiEnv)
      expect(run.code).toBe(0)
      expect(run.stdout).toMatch(/Export exp_0+c: (queued|running), \d+ s elapsed/)
      expect(run.stdout).toMatch(/Export exp_0+c: succeeded, \d+ s elapsed/)
      expect(run.stdout).toContain('Downloading file 1/1: 11 B of 11 B')
      expect(readFileSync(join(scratch, FILE), 'utf8')).toBe('hello world')
    } finally {
      rmSync(scratch, { recursive: true, force: true })
    }
  })

  it('stays quiet when stderr is not a terminal, and with --json', async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'ticksupply-quiet-'))
    try {
      const piped = await ticksupply(create(['--download', scratch]), apiEnv)
      expect(piped.code).toBe(0)
      expect(piped.stderr).not.toContain('elapsed')
      expect(piped.stderr).not.toContain('Downloading')
      const json = await onTerminal(create(['--wait', '--json']), apiEnv)
      expect(json.code).toBe(0)
      expect(json.stdout).not.toContain('elapsed')
      expect(json.stdout).toContain('"status": "succeeded"')
    } finally {
      rmSync(scratch, { recursive: true, force: true })
    }
  })
})

describe('a 409 for an existing subscription', () => {
  let server: RunningServer

  beforeAll(async () => {
    server = await startServer({ accounts: ['dup'] })
  })
  afterAll(async () => {
    await server.stop()
  })

  it('shows the existing subscription id, in words and in --json', async () => {
    const env = {
      TICKSUPPLY_BASE_URL: server.baseUrl,
      TICKSUPPLY_API_KEY: server.apiKeys.get('dup') ?? '',
    }
    const first = await ticksupply(['subscriptions', 'create', '--datastream', '21', '--json'], env)
    const { id } = JSON.parse(first.stdout) as { id: string }
    const again = await ticksupply(['subscriptions', 'create', '--datastream', '21'], env)
    expect(again.code).toBe(8)
    expect(again.stderr).toContain(`The existing subscription is ${id}.`)
    const json = await ticksupply(['subscriptions', 'create', '--datastream', '21', '--json'], env)
    expect(json.code).toBe(8)
    expect(JSON.parse(json.stderr)).toMatchObject({
      error: { code: 'already_exists', details: { subscription_id: id } },
    })
  })
})

describe('ticksupply against answers outside the contract', () => {
  let odd: TestHttpServer
  let answer: (url: string, response: ServerResponse) => void = () => undefined

  beforeAll(async () => {
    odd = await startTestHttpServer((request, response) => {
      answer(request.url, response)
    })
  })
  afterAll(async () => {
    await odd.close()
  })

  const oddEnv = () => ({ TICKSUPPLY_BASE_URL: odd.url, TICKSUPPLY_API_KEY: 'odd-key-0123456789' })
  const row = {
    id: 'sub_1',
    status: 'active',
    datastream_id: 1,
    created_at: '2026-11-01T00:00:00Z',
    datastream: { exchange: 'binance', instrument: 'BTCUSDT', stream_type: 'trade' },
  }
  const token = (url: string) => new URL(url, 'http://x').searchParams.get('page_token')

  it.each([
    [
      'hands out a token again after another page',
      (t: string | null) => (t === 'A' ? 'B' : 'A'),
      3,
    ],
    [
      'leaves out next_page_token on page 2',
      (t: string | null) => (t === null ? 'A' : undefined),
      2,
    ],
  ])(
    'ends a list whose server %s with exit 15, after a bounded number of requests',
    async (_name, next, requests) => {
      answer = (url, response) => {
        sendJson(response, 200, {
          items: [row],
          total: 9,
          limit: 1,
          next_page_token: next(token(url)),
        })
      }
      const before = odd.requests.length

      const run = await ticksupply(['subscriptions', 'list'], oddEnv())

      expect(run.code).toBe(15)
      expect(run.stderr).toMatch(/^ticksupply: .*\[unexpected_response\] \(HTTP 200/)
      expect(run.stderr).not.toContain('internal error')
      expect(odd.requests.length - before).toBe(requests)
    },
  )

  it.each([
    [
      'subscriptions get on an object of other fields',
      ['subscriptions', 'get', 'sub_1'],
      { hello: 1 },
    ],
    ['subscriptions get on null', ['subscriptions', 'get', 'sub_1'], null],
    ['subscriptions list on an array', ['subscriptions', 'list'], []],
    ['exchanges list on an object', ['exchanges', 'list'], { items: [] }],
    ['exports get on a job without its range', ['exports', 'get', JOB.id], { id: JOB.id }],
  ])('exits 15, not 1, for %s', async (_name, args, body) => {
    answer = (_url, response) => {
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end(JSON.stringify(body))
    }
    const before = odd.requests.length

    const run = await ticksupply(args, oddEnv())

    expect(run.code).toBe(15)
    expect(run.stderr).toContain('[unexpected_response]')
    expect(run.stderr).not.toMatch(STACK_LINE)
    expect(odd.requests.length - before).toBe(1)
  })

  it('exits 16 when the connection drops in the middle of a file', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'ticksupply-cut-'))
    answer = (url, response) => {
      if (url.startsWith('/v1/')) {
        sendJson(response, 200, {
          artifacts: [{ id: 'art_1', url: `/files/${FILE}?sig=1`, bytes: 1000, filename: FILE }],
          count: 1,
          total_bytes: 1000,
        })
      } else {
        response.writeHead(200, { 'content-length': '1000' })
        response.write(Buffer.alloc(300, 'x'))
        setTimeout(() => response.socket?.destroy(), 30)
      }
    }
    try {
      const run = await ticksupply(['exports', 'download', JOB.id, '--dir', directory], oddEnv())

      expect(run.code).toBe(16)
      expect(run.stderr).toContain('[network_error]')
      expect(readdirSync(directory)).toEqual([`${FILE}.partial`])
    } finally {
      rmSync(directory, { recursive: true, force: true })
    }
  })

  it('names a damaged --key-store file in one line, with exit 19 and nothing sent', async () => {
    const store = mkdtempSync(join(tmpdir(), 'ticksupply-keys-'))
    const keyFile = join(store, `${createHash('sha256').update('op-broken').digest('hex')}.json`)
    writeFileSync(keyFile, '{not json')
    answer = (_url, response) => {
      sendJson(response, 201, row)
    }
    const before = odd.requests.length
    try {
      const run = await ticksupply(
        [
          'subscriptions',
          'create',
          '--datastream',
          '1',
          '--operation-id',
          'op-broken',
          '--key-store',
          store,
        ],
        oddEnv(),
      )

      expect(run.code).toBe(19)
      expect(run.stderr.split('\n')).toHaveLength(2)
      expect(run.stderr).toContain(`ticksupply: Key file ${keyFile} of operation "op-broken"`)
      expect(odd.requests.length - before).toBe(0)
      // Left for a person to look at: it may hold the only copy of the operation's key.
      expect(readFileSync(keyFile, 'utf8')).toBe('{not json')
    } finally {
      rmSync(store, { recursive: true, force: true })
    }
  })
})
