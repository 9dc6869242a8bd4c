import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import pg from 'pg'
import type { ServerProcess } from '../support/server-process.js'
import { freePort, startServerProcess } from '../support/server-process.js'
import type { Counts, SoakKey, Violation } from './ledger.js'
import { Ledger } from './ledger.js'

export interface PhaseOptions {
  readonly name: string
  /** `sqlite:<file>` or a PostgreSQL URL. */
  readonly databaseUrl: string
  readonly artifactsDir: string
  /** Server processes on the database: 1 on SQLite, 2 on PostgreSQL. */
  readonly instances: 1 | 2
  readonly durationMs: number
  /**
   * When to SIGKILL and restart a server, as fractions of the duration; on PostgreSQL the
   * second instance is the one killed, so the first lives through the phase and is measured.
   */
  readonly killAt: readonly number[]
  /** Clients sending at once, each one request after the other. */
  readonly clients: number
  readonly leaseMs: number
}

export interface PhaseReport {
  readonly name: string
  readonly durationMs: number
  readonly counts: Counts
  readonly keys: number
  /** Export rows found in the database for the keys: one per key if every operation ran once. */
  readonly operationsRun: number
  readonly keysRunTwice: number
  readonly keysNeverRun: number
  /** Keys still "in progress" in the final round, after the lease and the wait had passed. */
  readonly stuckKeys: number
  readonly kills: number
  readonly restartsMs: readonly number[]
  /** Resident memory of the measured process (from /proc), and its V8 heap in use and
   * external memory (from its /metrics), after warm-up and at the end. */
  readonly rss: MemoryFigure
  readonly heap: MemoryFigure
  readonly external: MemoryFigure
  readonly violations: readonly Violation[]
  readonly requestsPerSecond: number
}

const ACCOUNTS = ['soak_a', 'soak_b', 'soak_c', 'soak_d'].map((name, index) => ({
  name,
  apiKey: `soak-key-${String(index)}-0123456789abcdef`,
}))

/** One backend's soak: mixed load with duplicates, mismatches, aborts and SIGKILLs, then checks. */
export async function runPhase(options: PhaseOptions): Promise<PhaseReport> {
  const env = {
    DATABASE_URL: options.databaseUrl,
    ARTIFACTS_DIR: options.artifactsDir,
    API_KEYS: ACCOUNTS.map((account) => `${account.name}:${account.apiKey}`).join(','),
    RATE_LIMIT_PER_MINUTE: '1000000',
    RATE_LIMIT_PER_HOUR: '100000000',
    IDEMPOTENCY_LEASE_MS: String(options.leaseMs),
    // Operations take a little while, so that duplicates overlap their originals.
    TICKSUPPLY_TEST_HANDLER_DELAY_MS: '15',
    LOG_LEVEL: 'error',
  }
  const ports = await Promise.all(Array.from({ length: options.instances }, () => freePort()))
  const servers: (ServerProcess | undefined)[] = []
  for (const port of ports) servers.push(await startServerProcess(env, port))
  const urls = ports.map((port) => `http://127.0.0.1:${String(port)}`)
  const ledger = new Ledger()
  for (const account of ACCOUNTS) await subscribe(urls[0] ?? '', account.apiKey)

  const started = Date.now()
  const stopAt = started + options.durationMs
  let nextBase = 1_000_000_000n
  const newKey = (): SoakKey => {
    const account = pick(ACCOUNTS)
    nextBase += 10n
    const key: SoakKey = {
      key: randomUUID(),
      apiKey: account.apiKey,
      base: nextBase,
      answer: undefined,
      originals: 0,
      replays: 0,
    }
    ledger.keys.push(key)
    return key
  }
  const anyUrl = () => urls[Math.floor(Math.random() * urls.length)] ?? ''

  // Memory of the process that lives through the phase: the first instance on PostgreSQL, the
  // last life of the only one on SQLite.
  const rssSamples: Sample[] = []
  const heapSamples: Sample[] = []
  const externalSamples: Sample[] = []
  let measuredSince = started
  const sampler = setInterval(
    () => {
      const pid = servers[0]?.pid
      if (pid === undefined) return
      const mb = rssMb(pid)
      if (mb !== undefined) rssSamples.push({ at: Date.now(), mb })
      void fetch(`${urls[0] ?? ''}/metrics`)
        .then((response) => response.text())
        .then((text) => {
          const at = Date.now()
          const heap = sampleMb(text, 'nodejs_heap_size_used_bytes')
          const external = sampleMb(text, 'nodejs_external_memory_bytes')
          if (heap !== undefined) heapSamples.push({ at, mb: heap })
          if (external !== undefined) externalSamples.push({ at, mb: external })
        })
        .catch(() => undefined)
    },
    Math.max(500, Math.floor(options.durationMs / 120)),
  )

  const kills: number[] = []
  const restartsMs: number[] = []
  const chaos = (async () => {
    for (const fraction of options.killAt) {
      const at = started + fraction * options.durationMs
      if (at > Date.now()) await sleep(at - Date.now())
      const index = options.instances === 2 ? 1 : 0
      const victim = servers[index]
      if (victim === undefined) continue
      victim.kill('SIGKILL')
      await victim.exited
      kills.push(Date.now())
      servers[index] = undefined
      const restarting = Date.now()
      servers[index] = await startServerProcess(env, ports[index])
      restartsMs.push(Date.now() - restarting)
      if (index === 0) {
        rssSamples.length = 0
        heapSamples.length = 0
        externalSamples.length = 0
        measuredSince = Date.now()
      }
    }
  })()

  const client = async () => {
    while (Date.now() < stopAt) {
      const roll = Math.random()
      const answered = ledger.keys.filter((key) => key.answer !== undefined)
      if (roll < 0.5 || ledger.keys.length === 0) {
        await keyed(ledger, anyUrl(), newKey(), true)
      } else if (roll < 0.7) {
        await keyed(ledger, anyUrl(), pick(ledger.keys), true)
      } else if (roll < 0.76) {
        // The same new key several times at once, on every instance.
        const key = newKey()
        await Promise.all(
          [0, 1, 2].map((index) => keyed(ledger, urls[index % urls.length] ?? '', key, true)),
        )
      } else if (roll < 0.81 && answered.length > 0) {
        await keyed(ledger, anyUrl(), pick(answered), false)
      } else if (roll < 0.88) {
        // A client that gives up early: the operation must still finish (or never start).
        await keyed(
          ledger,
          anyUrl(),
          Math.random() < 0.5 ? newKey() : pick(ledger.keys),
          true,
          Math.random() * 40,
        )
      } else {
        await read(ledger, anyUrl(), pick(ACCOUNTS).apiKey)
      }
    }
  }
  await Promise.all(Array.from({ length: options.clients }, client))
  await chaos
  clearInterval(sampler)
  const loadMs = Date.now() - started

  // Every claim of a killed holder has ended by now (process or session gone; the lease at
  // most): a key still in progress in this round is stuck.
  await sleep(Math.min(options.leaseMs, 5_000))
  let stuckKeys = 0
  await eachKey(ledger.keys, async (key) => {
    let final = false
    for (let attempt = 0; attempt < 20 && !final; attempt++) {
      final = (await keyed(ledger, anyUrl(), key, true)) === 'final'
      if (!final) await sleep(250)
    }
    if (!final) stuckKeys++
  })
  // And once more, on whichever instance: still the same bytes.
  await eachKey(ledger.keys, async (key) => {
    await keyed(ledger, anyUrl(), key, true)
  })

  const runs = await exportRunsByStart(options.databaseUrl)
  let operationsRun = 0
  let keysRunTwice = 0
  let keysNeverRun = 0
  for (const key of ledger.keys) {
    const count = runs.get(key.base.toString()) ?? 0
    operationsRun += count
    if (count > 1) keysRunTwice++
    if (count === 0) keysNeverRun++
  }
  for (const server of servers) {
    server?.kill('SIGTERM')
    await server?.exited
  }
  return {
    name: options.name,
    durationMs: loadMs,
    counts: ledger.counts,
    keys: ledger.keys.length,
    operationsRun,
    keysRunTwice,
    keysNeverRun,
    stuckKeys,
    kills: kills.length,
    restartsMs,
    rss: growth(rssSamples, measuredSince),
    heap: growth(heapSamples, measuredSince),
    external: growth(externalSamples, measuredSince),
    violations: ledger.violations,
    requestsPerSecond: Math.round((ledger.counts.requests / loadMs) * 1000),
  }
}

/** Runs `fn` for every key, eight at a time. */
async function eachKey(
  keys: readonly SoakKey[],
  fn: (key: SoakKey) => Promise<void>,
): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < keys.length) {
        const key = keys[next++]
        if (key !== undefined) await fn(key)
      }
    }),
  )
}

function pick<T>(items: readonly T[]): T {
  const item = items[Math.floor(Math.random() * items.length)]
  if (item === undefined) throw new Error('pick from an empty list')
  return item
}

function exportBody(key: SoakKey, own: boolean): string {
  const start = own ? key.base : key.base + 1n
  return `{"datastream_id":1,"start_time":"${start.toString()}","end_time":"${(start + 5n).toString()}"}`
}

/** One keyed create, judged; aborted after `abortAfterMs` when given. */
async function keyed(
  ledger: Ledger,
  url: string,
  key: SoakKey,
  own: boolean,
  abortAfterMs?: number,
): Promise<'final' | 'retry'> {
  ledger.counts.requests++
  ledger.counts.keyed++
  const controller = new AbortController()
  const timer =
    abortAfterMs === undefined
      ? undefined
      : setTimeout(() => {
          controller.abort()
        }, abortAfterMs)
  try {
    const response = await fetch(`${url}/v1/exports`, {
      method: 'POST',
      headers: {
        'x-api-key': key.apiKey,
        'idempotency-key': key.key,
        'content-type': 'application/json',
      },
      body: exportBody(key, own),
      signal: controller.signal,
    })
    const body = Buffer.from(await response.arrayBuffer())
    return ledger.record(key, own, {
      status: response.status,
      body,
      replayed: response.headers.get('idempotent-replayed') === 'true',
    })
  } catch {
    if (controller.signal.aborted) {
      ledger.counts.aborted++
    } else {
      // The server is down (killed, restarting): do not spin.
      ledger.counts.networkErrors++
      await sleep(50)
    }
    return 'retry'
  } finally {
    clearTimeout(timer)
  }
}

async function read(ledger: Ledger, url: string, apiKey: string): Promise<void> {
  ledger.counts.requests++
  ledger.counts.reads++
  try {
    const path = pick([
      '/v1/exports?limit=5',
      '/v1/subscriptions',
      '/v1/billing/summary',
      '/v1/exchanges',
    ])
    const response = await fetch(`${url}${path}`, { headers: { 'x-api-key': apiKey } })
    await response.arrayBuffer()
    if (response.status >= 500 && response.status !== 503) {
      ledger.violations.push({ kind: 'server_error', key: path, detail: String(response.status) })
    }
  } catch {
    ledger.counts.networkErrors++
  }
}

async function subscribe(url: string, apiKey: string): Promise<void> {
  const response = await fetch(`${url}/v1/subscriptions`, {
    method: 'POST',
    headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
    body: '{"datastream_id":1}',
  })
  if (response.status !== 201 && response.status !== 409) {
    throw new Error(`could not subscribe: ${String(response.status)} ${await response.text()}`)
  }
}

/** How many exports the database holds per `start_time`: each is one run of a key's operation. */
async function exportRunsByStart(databaseUrl: string): Promise<Map<string, number>> {
  const sql = 'SELECT start_time_ns AS start, COUNT(*) AS n FROM exports GROUP BY start_time_ns'
  let rows: { start: number | string | bigint; n: number | string }[]
  if (databaseUrl.startsWith('sqlite:')) {
    const db = new Database(databaseUrl.slice('sqlite:'.length), { readonly: true })
    try {
      rows = db.prepare(sql).safeIntegers(true).all() as typeof rows
    } finally {
      db.close()
    }
  } else {
    const client = new pg.Client({ connectionString: databaseUrl })
    await client.connect()
    try {
      rows = (await client.query<{ start: string; n: string }>(sql)).rows
    } finally {
      await client.end()
    }
  }
  return new Map(rows.map((row) => [String(row.start), Number(row.n)]))
}

function rssMb(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${String(pid)}/status`, 'utf8')
    const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1]
    return kb === undefined ? undefined : Number(kb) / 1024
  } catch {
    return undefined
  }
}

interface Sample {
  readonly at: number
  readonly mb: number
}

export interface MemoryFigure {
  readonly baselineMb: number
  readonly endMb: number
  readonly growth: number
  readonly samples: number
  /** How long the measured process lived while sampled. */
  readonly lifeMs: number
}

/** A gauge of the Prometheus text, in MB. */
function sampleMb(text: string, name: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(name.length + 1)) / 1_048_576
}

/**
 * A memory figure of the measured process: the median of the samples just after its warm-up
 * (its first third) against the median of its last tenth.
 */
function growth(samples: readonly Sample[], since: number): MemoryFigure {
  const end = samples.at(-1)?.at ?? since
  const life = end - since
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b)
    return sorted[Math.floor(sorted.length / 2)] ?? 0
  }
  const baseline = median(
    samples.filter((s) => s.at >= since + life / 3 && s.at < since + life / 2).map((s) => s.mb),
  )
  const last = median(samples.filter((s) => s.at >= end - life / 10).map((s) => s.mb))
  return {
    baselineMb: Math.round(baseline * 10) / 10,
    endMb: Math.round(last * 10) / 10,
    growth: baseline === 0 ? 0 : Math.round(((last - baseline) / baseline) * 1000) / 1000,
    samples: samples.length,
    lifeMs: life,
  }
}
