import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import pg from 'pg'
import { inject } from 'vitest'
import type { App, AppOptions } from '../../src/app.js'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { toNumberedPlaceholders } from '../../src/db/placeholders.js'
import { freePort } from '../../../../test-support/free-port.js'
import { createTestDatabase } from '../../../../test-support/postgres-database.js'

/** The repository root, where `packages/server/dist` lives. */
export const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '../../../../..')
export const MAIN_JS = join(REPO_ROOT, 'packages/server/dist/main.js')
export const KEYS_CLI_JS = join(REPO_ROOT, 'packages/server/dist/keys-cli.js')

/** Two API keys of one account (acme) and one of another account (globex). */
export const ACME_KEY = 'acme-key-0123456789abcdef'
export const ACME_SECOND_KEY = 'acme-second-key-0123456789'
export const GLOBEX_KEY = 'globex-key-0123456789abcd'
export const API_KEYS_ENV = `acme:${ACME_KEY},acme:${ACME_SECOND_KEY},globex:${GLOBEX_KEY}`

export const newKey = (): string => randomUUID()

export type Env = Record<string, string>

/** A fresh directory for one test file's database; `cleanup` removes it. */
export function tempDatabase(): {
  dir: string
  filename: string
  url: string
  cleanup: () => void
} {
  const dir = mkdtempSync(join(tmpdir(), 'ticksupply-server-test-'))
  const filename = join(dir, 'ticksupply.db')
  return {
    dir,
    filename,
    url: `sqlite:${filename}`,
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

function baseEnv(databaseUrl: string): Env {
  return {
    HOST: '127.0.0.1',
    DATABASE_URL: databaseUrl,
    API_KEYS: API_KEYS_ENV,
    LOG_LEVEL: 'silent',
    // These suites send thousands of requests per account; the rate limit has tests of its own.
    RATE_LIMIT_PER_MINUTE: '1000000',
    RATE_LIMIT_PER_HOUR: '100000000',
  }
}

export interface TestServer {
  readonly url: string
  readonly app: App
  /** The SQLite file the server uses (empty on PostgreSQL). */
  readonly filename: string
  readonly databaseUrl: string
  /** Where the server writes export files. */
  readonly artifactsDir: string
  /** How many times a keyed operation actually ran: `claims + claims_takeover`. */
  claims(): number
  /**
   * The idempotency counter `ticksupply_idempotency_<name>_total`, with `labels` for a labelled
   * series, e.g. `counter('conflicts', { reason: 'mismatch' })`.
   */
  counter(name: string, labels?: Readonly<Record<string, string>>): number
  /** Reads the server's database directly (`?` placeholders), whichever kind it is. */
  query<Row>(sql: string, params?: readonly unknown[]): Promise<Row[]>
  close(): Promise<void>
}

/**
 * Which database the suite runs on: the vitest project sets `TEST_DATABASE=postgres` to run
 * the same HTTP suite against PostgreSQL; SQLite otherwise.
 */
export const TEST_DATABASE: 'sqlite' | 'postgres' =
  process.env['TEST_DATABASE'] === 'postgres' ? 'postgres' : 'sqlite'

/**
 * A fresh, empty database of the suite's kind: a SQLite file in a temporary directory, or a new
 * database on the run's PostgreSQL server (which goes away with the server at the end), with a
 * temporary directory beside it for files.
 */
export async function freshDatabase(): Promise<{ url: string; dir: string; cleanup: () => void }> {
  if (TEST_DATABASE === 'postgres') {
    const dir = mkdtempSync(join(tmpdir(), 'ticksupply-server-test-'))
    return {
      url: await createTestDatabase(inject('postgresUrl')),
      dir,
      cleanup: () => {
        rmSync(dir, { recursive: true, force: true })
      },
    }
  }
  return tempDatabase()
}

/** Reads a database by URL, SQLite or PostgreSQL, with `?` placeholders. */
export async function queryDatabase<Row>(
  databaseUrl: string,
  sql: string,
  params: readonly unknown[] = [],
): Promise<Row[]> {
  if (databaseUrl.startsWith('sqlite:')) {
    const db = new Database(databaseUrl.slice('sqlite:'.length), { readonly: true })
    try {
      return db.prepare(sql).all(...params) as Row[]
    } finally {
      db.close()
    }
  }
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    return (await client.query(toNumberedPlaceholders(sql), [...params])).rows as Row[]
  } finally {
    await client.end()
  }
}

/**
 * Starts the real server in this process on an ephemeral port, on a fresh database of the
 * suite's kind (or on `DATABASE_URL` when the overrides name one). Export files go beside a
 * SQLite file, or into a temporary directory (unless `ARTIFACTS_DIR` is given).
 */
export async function startServer(
  overrides: Env = {},
  options: AppOptions = {},
): Promise<TestServer> {
  const database = overrides['DATABASE_URL'] === undefined ? await freshDatabase() : undefined
  const databaseUrl = overrides['DATABASE_URL'] ?? database?.url ?? ''
  const filename = databaseUrl.startsWith('sqlite:') ? databaseUrl.slice('sqlite:'.length) : ''
  let scratch: string | undefined
  let artifactsDir = overrides['ARTIFACTS_DIR']
  if (artifactsDir === undefined) {
    if (filename !== '') artifactsDir = join(dirname(filename), 'artifacts')
    else {
      scratch = database?.dir ?? mkdtempSync(join(tmpdir(), 'ticksupply-server-test-'))
      artifactsDir = join(scratch, 'artifacts')
    }
  }
  const app = await buildApp(
    loadConfig({ ...baseEnv(databaseUrl), PORT: '0', ARTIFACTS_DIR: artifactsDir, ...overrides }),
    options,
  )
  const url = await app.listen()
  const counter = (name: string, labels?: Readonly<Record<string, string>>) =>
    app.metrics.counts[seriesName(name, labels)] ?? 0
  return {
    url,
    app,
    filename,
    databaseUrl,
    artifactsDir,
    counter,
    claims: () => counter('claims') + counter('claims_takeover'),
    query: (sql, params) => queryDatabase(databaseUrl, sql, params),
    async close() {
      await app.close()
      database?.cleanup()
      if (scratch !== undefined && database === undefined)
        rmSync(scratch, { recursive: true, force: true })
    },
  }
}

/** A series as Prometheus writes it: `name` or `name{label="value",...}`, labels in order given. */
export function seriesName(name: string, labels?: Readonly<Record<string, string>>): string {
  if (labels === undefined) return name
  const pairs = Object.entries(labels).map(([label, value]) => `${label}="${value}"`)
  return `${name}{${pairs.join(',')}}`
}

/**
 * The value of one sample in a Prometheus text exposition (`name` or `name{...}` as written by
 * {@link seriesName}); 0 when the series is absent.
 */
export function sampleValue(exposition: string, series: string): number {
  for (const line of exposition.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1))
  }
  return 0
}

/** An idempotency counter of a server reached over HTTP (a spawned process). */
export async function scrapeCounter(
  url: string,
  name: string,
  labels?: Readonly<Record<string, string>>,
): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return sampleValue(text, seriesName(`ticksupply_idempotency_${name}_total`, labels))
}

export interface SpawnedServer {
  readonly url: string
  readonly child: ChildProcess
  stdout(): string
  stderr(): string
  kill(signal?: NodeJS.Signals): void
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** Runs `node packages/server/dist/main.js` with the env; resolves once it listens. */
export async function spawnServer(
  overrides: Env & { DATABASE_URL: string },
): Promise<SpawnedServer> {
  const port = await freePort()
  const child = spawn(process.execPath, [MAIN_JS], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env['PATH'] ?? '',
      ...baseEnv(overrides.DATABASE_URL),
      PORT: String(port),
      ...overrides,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
    child.once('exit', (code, signal) => {
      done({ code, signal })
    })
  })
  const url = await new Promise<string>((ready, fail) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      fail(new Error(`server did not start in 20 s; stderr: ${err}`))
    }, 20_000)
    const onData = () => {
      const match = /Ticksupply API listening on (http:\/\/\S+)/.exec(out)
      if (match?.[1] !== undefined) {
        clearTimeout(timer)
        child.stdout.off('data', onData)
        ready(match[1])
      }
    }
    child.stdout.on('data', onData)
    void exited.then(({ code, signal }) => {
      clearTimeout(timer)
      fail(new Error(`server exited (${String(code)}, ${String(signal)}) before listening: ${err}`))
    })
  })
  return {
    url,
    child,
    stdout: () => out,
    stderr: () => err,
    kill: (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    },
    exited,
  }
}

/** Runs a built script of the server package to its end and collects its output. */
export function runNode(
  script: string,
  args: readonly string[],
  env: Env,
  timeoutMs = 20_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [script, ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env['PATH'] ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      fail(new Error(`${script} ${args.join(' ')} did not exit in time; stderr: ${stderr}`))
    }, timeoutMs)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      done({ code, signal, stdout, stderr })
    })
  })
}

export interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly body: Buffer
  readonly text: string
  /** The body parsed as JSON, typed as the caller expects it. */
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- a typed JSON.parse
  json<T = unknown>(): T
}

export interface SendOptions {
  method?: string
  /** The `Idempotency-Key` header; omitted when undefined. */
  key?: string
  /** The `X-Api-Key` header; ACME_KEY by default, null for none. */
  apiKey?: string | null
  /** A JSON value (serialised) or the raw body text. */
  body?: unknown
  /** The body exactly as sent: text (as UTF-8) or bytes. */
  rawBody?: string | Buffer
  headers?: Record<string, string>
}

/** One request over loopback with fetch; the body is read as bytes. */
export async function send(url: string, options: SendOptions = {}): Promise<Answer> {
  const headers: Record<string, string> = {}
  const apiKey = options.apiKey === undefined ? ACME_KEY : options.apiKey
  if (apiKey !== null) headers['x-api-key'] = apiKey
  if (options.key !== undefined) headers['idempotency-key'] = options.key
  let body: string | Buffer | undefined
  if (options.rawBody !== undefined) body = options.rawBody
  else if (options.body !== undefined) body = JSON.stringify(options.body)
  if (body !== undefined) headers['content-type'] = 'application/json'
  Object.assign(headers, options.headers)
  const response = await fetch(url, {
    method: options.method ?? (body === undefined ? 'GET' : 'POST'),
    headers,
    ...(body === undefined ? {} : { body }),
  })
  return toAnswer(response.status, response.headers, Buffer.from(await response.arrayBuffer()))
}

function toAnswer(status: number, headers: Headers, body: Buffer): Answer {
  const text = body.toString('utf8')
  return {
    status,
    headers,
    body,
    text,
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- a typed JSON.parse
    json: <T>() => JSON.parse(text) as T,
  }
}

/** The error envelope of an answer, or a failure naming what came instead. */
export function errorOf(answer: Answer): { code: string; message: string; details?: unknown } {
  const parsed = answer.json<{ error?: { code: string; message: string; details?: unknown } }>()
  if (parsed.error === undefined) throw new Error(`not an error envelope: ${answer.text}`)
  return parsed.error
}

export interface RawAnswer {
  readonly status: number
  /** Header lines as sent, names lower-cased. */
  readonly headers: Record<string, string>
  readonly text: string
}

/**
 * Writes `head` (request line and header lines, CRLF-separated, without the blank line) and
 * `body` on a fresh TCP connection and reads the answer to the end (the request asks for
 * `Connection: close`). For what fetch cannot send: repeated header lines, raw whitespace,
 * malformed bytes.
 */
export function sendRaw(url: string, head: string, body = ''): Promise<RawAnswer> {
  const target = new URL(url)
  return new Promise((done, fail) => {
    const socket = connect(Number(target.port), target.hostname)
    const chunks: Buffer[] = []
    socket.setTimeout(15_000, () => {
      socket.destroy(new Error('raw request timed out'))
    })
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', fail)
    socket.on('close', () => {
      done(parseRawAnswer(Buffer.concat(chunks).toString('utf8')))
    })
    socket.write(`${head}\r\n\r\n${body}`)
  })
}

function parseRawAnswer(raw: string): RawAnswer {
  const split = raw.indexOf('\r\n\r\n')
  const headText = split === -1 ? raw : raw.slice(0, split)
  const [statusLine = '', ...lines] = headText.split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
  }
  return {
    status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0),
    headers,
    text: split === -1 ? '' : raw.slice(split + 4),
  }
}

/** The head of a raw request to the server with the account's API key. */
export function rawHead(
  url: string,
  method: string,
  path: string,
  extraLines: readonly string[],
  bodyLength?: number,
): string {
  const target = new URL(url)
  const lines = [
    `${method} ${path} HTTP/1.1`,
    `Host: ${target.host}`,
    `X-Api-Key: ${ACME_KEY}`,
    'Connection: close',
    ...extraLines,
  ]
  if (bodyLength !== undefined) {
    lines.push('Content-Type: application/json', `Content-Length: ${String(bodyLength)}`)
  }
  return lines.join('\r\n')
}

/**
 * Sends a keyed POST (to `/v1/subscriptions` unless `path` says otherwise) with node:http and
 * destroys the connection `afterMs` after the request has been written (0: at once), before an
 * answer can be read. Resolves when the socket is gone.
 */
export function sendAndAbandon(
  url: string,
  options: { key: string; body?: unknown; afterMs?: number; apiKey?: string; path?: string },
): Promise<void> {
  const target = new URL(options.path ?? '/v1/subscriptions', url)
  const body = options.body === undefined ? '' : JSON.stringify(options.body)
  return new Promise((done) => {
    const request = httpRequest({
      host: target.hostname,
      port: target.port,
      path: target.pathname + target.search,
      method: 'POST',
      agent: false,
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'idempotency-key': options.key,
        'x-api-key': options.apiKey ?? ACME_KEY,
      },
    })
    request.on('error', () => {
      done()
    })
    request.on('close', () => {
      done()
    })
    request.end(body, () => {
      setTimeout(() => request.destroy(), options.afterMs ?? 0)
    })
  })
}

/** A subscription as the API shows it. */
export interface Subscription {
  id: string
  datastream_id: number
  status: 'active' | 'paused' | 'deleted'
  created_at: string
  datastream: {
    datastream_id: number
    exchange: string
    instrument: string
    stream_type: string
    wire_format: string
  }
  spans?: Span[]
}

export interface Span {
  id: string
  started_at: string
  ended_at: string | null
}

export interface PageOf<T> {
  items: T[]
  total: number
  limit: number
  next_page_token: string | null
}

/** Every listed (not deleted) subscription of the API key's account, all pages walked. */
export async function listSubscriptions(url: string, apiKey = ACME_KEY): Promise<Subscription[]> {
  const all: Subscription[] = []
  let token: string | null = null
  for (let page = 0; page < 1000; page++) {
    const query: string = token === null ? '?limit=100' : `?limit=100&page_token=${token}`
    const answer = await send(`${url}/v1/subscriptions${query}`, { apiKey })
    if (answer.status !== 200)
      throw new Error(`list failed: ${String(answer.status)} ${answer.text}`)
    const body = answer.json<PageOf<Subscription>>()
    all.push(...body.items)
    token = body.next_page_token
    if (token === null) return all
  }
  throw new Error('more than 1000 pages of subscriptions')
}

/** The account's listed subscriptions to one datastream. */
export async function subscriptionsTo(
  url: string,
  datastreamId: number,
  apiKey = ACME_KEY,
): Promise<Subscription[]> {
  return (await listSubscriptions(url, apiKey)).filter((sub) => sub.datastream_id === datastreamId)
}

export async function spansOf(url: string, id: string, apiKey = ACME_KEY): Promise<Span[]> {
  const answer = await send(`${url}/v1/subscriptions/${id}/spans`, { apiKey })
  if (answer.status !== 200)
    throw new Error(`spans failed: ${String(answer.status)} ${answer.text}`)
  return answer.json<Span[]>()
}

/** Creates a subscription (no idempotency key) and returns it; fails on anything but 201. */
export async function subscribe(
  url: string,
  datastreamId: number,
  apiKey = ACME_KEY,
): Promise<Subscription> {
  const answer = await send(`${url}/v1/subscriptions`, {
    apiKey,
    body: { datastream_id: datastreamId },
  })
  if (answer.status !== 201)
    throw new Error(`subscribe failed: ${String(answer.status)} ${answer.text}`)
  return answer.json<Subscription>()
}

/**
 * Hands out datastream ids that no other test in this file used, so that tests sharing a
 * server never see each other's subscriptions. Each test file gets its own database.
 */
export function datastreamIds(start = 1): () => number {
  let next = start
  return () => {
    if (next > 540) throw new Error('ran out of datastreams')
    return next++
  }
}

/** Polls `check` every `intervalMs` up to `attempts` times until it returns true. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  { attempts = 100, intervalMs = 50 }: { attempts?: number; intervalMs?: number } = {},
): Promise<boolean> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (await check()) return true
    await sleep(intervalMs)
  }
  return false
}

export const REQUEST_ID = /^req_[0-9a-f]{16}$/
export const SUBSCRIPTION_ID = /^sub_[0-9a-f]{32}$/
export const SPAN_ID = /^spn_[0-9a-f]{32}$/
export const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/

/** Runs SQL on the server's database from a connection of its own, SQLite or PostgreSQL. */
export async function executeSql(server: TestServer, sql: string): Promise<void> {
  if (server.filename !== '') {
    const db = new Database(server.filename)
    try {
      db.exec(sql)
    } finally {
      db.close()
    }
    return
  }
  const client = new pg.Client({ connectionString: server.databaseUrl })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

/**
 * Makes the server's idempotency store fail for real until the returned function is called:
 * on SQLite another connection holds the write lock (claims time out busy); on PostgreSQL the
 * records table is renamed away (claims fail).
 */
export async function breakIdempotencyStore(server: TestServer): Promise<() => Promise<void>> {
  if (server.databaseUrl.startsWith('sqlite:')) {
    const locker = new Database(server.filename)
    locker.exec('BEGIN IMMEDIATE')
    return () => {
      locker.exec('ROLLBACK')
      locker.close()
      return Promise.resolve()
    }
  }
  const admin = new pg.Client({ connectionString: server.databaseUrl })
  await admin.connect()
  await admin.query('ALTER TABLE idempotency_records RENAME TO idempotency_records_away')
  return async () => {
    await admin.query('ALTER TABLE idempotency_records_away RENAME TO idempotency_records')
    await admin.end()
  }
}
