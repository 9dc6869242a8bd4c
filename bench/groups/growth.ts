/**
 * Group "growth": claim latency as the records table grows, through the store API in this
 * process (one claim at a time). At each size: the first claim of a new key, the first claim
 * with its completion (the record's one write), and the replay of an existing record (a key
 * read back from the table, never cached before). Filled with bulk SQL in the stores' own
 * layout (the SQLite store is opened again after each fill, and measured once it has read the
 * keys in); bytes per record from the database's own size.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { join } from 'node:path'
import pg from 'pg'
import type { ClaimRequest, Store, StoreTransaction } from '@ticksupply/idempotency'
import { createSqliteStore, openSqliteConnection } from '@ticksupply/idempotency/stores/sqlite'
import { createPostgresStore } from '@ticksupply/idempotency/stores/postgres'
import type { BenchContext, GroupReport } from '../lib/context.js'
import { FILL_SCOPE, fillPostgres, fillSqlite } from '../lib/fill.js'
import { quantile } from '../lib/stats.js'
import { formatNumber, markdownTable } from '../lib/table.js'

const TABLE = 'idempotency_records'
export const GROWTH_SIZES = [10_000, 100_000, 1_000_000, 10_000_000] as const
const MAX_SAMPLES = 10_000
const DAY_MS = 86_400_000
const RESPONSE = {
  status: 201,
  headers: { 'content-type': 'application/json; charset=utf-8' },
  body: Buffer.from(`{"id":"${randomUUID()}"}`),
  requestId: 'req_0123456789abcdef',
}

interface Latency {
  readonly samples: number
  /** Microseconds. */
  readonly p50: number
  readonly p99: number
}

interface SizeResult {
  readonly records: number
  readonly bytesPerRecord: number
  readonly fillSeconds: number
  readonly firstClaim: Latency
  readonly firstWithCompletion: Latency
  readonly replay: Latency
}

/** The parts of a store under test the group needs. */
interface GrowthSubject {
  readonly store: Store<StoreTransaction>
  fill(count: number): Promise<void>
  /** Existing keys with their fingerprints, picked at random. */
  sampleKeys(count: number): Promise<{ key: string; fingerprint: string }[]>
  size(): Promise<{ rows: number; bytes: number }>
  close(): Promise<void>
}

const claimRequest = (key: string, fingerprint: string): ClaimRequest => ({
  scope: FILL_SCOPE,
  key,
  token: randomUUID(),
  fingerprint,
  leaseMs: 30_000,
  ttlMs: DAY_MS,
})

/** Untimed calls before each measurement (JIT, the pool's connections, the page cache). */
const WARM_UP_CALLS = 100

/**
 * Calls `once` untimed up to `WARM_UP_CALLS` times (or a fifth of the budget), then times it
 * until `max` samples or the budget. `once` starts and stops the clock itself, around the
 * part to time.
 */
async function timed(
  budgetMs: number,
  max: number,
  once: (index: number, clock: { start(): void; stop(): void }) => Promise<void>,
): Promise<Latency> {
  const samples: number[] = []
  let started = 0n
  let elapsed = 0n
  const clock = {
    start: () => {
      started = process.hrtime.bigint()
    },
    stop: () => {
      elapsed = process.hrtime.bigint() - started
    },
  }
  let index = 0
  const warmUpUntil = Date.now() + budgetMs / 5
  for (; index < WARM_UP_CALLS && Date.now() < warmUpUntil; index++) await once(index, clock)
  const deadline = Date.now() + budgetMs
  for (let taken = 0; taken < max && Date.now() < deadline; taken++, index++) {
    await once(index, clock)
    samples.push(Number(elapsed) / 1000)
  }
  return { samples: samples.length, p50: quantile(samples, 0.5), p99: quantile(samples, 0.99) }
}

async function measureSize(
  subject: GrowthSubject,
  records: number,
  fillSeconds: number,
  budgetMs: number,
): Promise<SizeResult> {
  const { store } = subject
  const fingerprint = randomBytes(32).toString('hex')
  const firstClaim = await timed(budgetMs, MAX_SAMPLES, async (_index, clock) => {
    const request = claimRequest(randomUUID(), fingerprint)
    clock.start()
    const outcome = await store.claim(request)
    clock.stop()
    if (outcome.kind !== 'claimed') throw new Error(`a new key answered ${outcome.kind}`)
    // Untimed: only the claim is measured.
    await store.release(request)
  })
  const firstWithCompletion = await timed(budgetMs, MAX_SAMPLES, async (_index, clock) => {
    const request = claimRequest(randomUUID(), fingerprint)
    clock.start()
    const outcome = await store.claim(request)
    if (outcome.kind !== 'claimed') throw new Error(`a new key answered ${outcome.kind}`)
    if (!(await store.complete(request, RESPONSE))) throw new Error('the completion was refused')
    clock.stop()
  })
  // Each replay reads a key never read before: the warm-up uses keys of its own.
  const existing = await subject.sampleKeys(Math.min(MAX_SAMPLES + WARM_UP_CALLS, records))
  const replay = await timed(
    budgetMs,
    Math.max(0, existing.length - WARM_UP_CALLS),
    async (index, clock) => {
      const { key, fingerprint: stored } = existing[index % existing.length] as {
        key: string
        fingerprint: string
      }
      const request = claimRequest(key, stored)
      clock.start()
      const outcome = await store.claim(request)
      clock.stop()
      if (outcome.kind !== 'replay') throw new Error(`an existing key answered ${outcome.kind}`)
    },
  )
  const { rows, bytes } = await subject.size()
  return {
    records,
    bytesPerRecord: bytes / Math.max(1, rows),
    fillSeconds,
    firstClaim,
    firstWithCompletion,
    replay,
  }
}

function sqliteSubject(context: BenchContext): Promise<GrowthSubject> {
  const connection = openSqliteConnection(join(context.dir, `growth-${randomUUID()}.db`))
  let store = createSqliteStore({ connection })
  const db = connection.database
  const now = Date.now()
  return Promise.resolve({
    get store() {
      return store
    },
    async fill(count) {
      fillSqlite(db, TABLE, count, { createdAt: now, expiresAt: now + DAY_MS })
      // Records written around the store: a store opened now reads them in, as one opened on a
      // file in use does at start, and is measured once it has (its key filter is ready).
      store.close()
      const startedAt = Date.now()
      store = createSqliteStore({ connection })
      while (!store.keyFilter().ready) await new Promise((resolve) => setTimeout(resolve, 10))
      const { keys, bytes } = store.keyFilter()
      context.log(
        `growth SQLite: the reopened store read ${formatNumber(keys)} keys in (${formatNumber(bytes / 1024)} KiB of filter) in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`,
      )
    },
    sampleKeys(count) {
      const maxId = (db.prepare(`SELECT max(id) AS id FROM ${TABLE}`).get() as { id: number }).id
      const row = db.prepare<[number], { key: string; fingerprint: string }>(
        `SELECT key, hex(fingerprint) AS fingerprint FROM ${TABLE} WHERE id >= ? ORDER BY id LIMIT 1`,
      )
      const keys: { key: string; fingerprint: string }[] = []
      const seen = new Set<string>()
      for (let tries = 0; keys.length < count && tries < count * 3; tries++) {
        const found = row.get(1 + Math.floor(Math.random() * maxId))
        if (found === undefined || seen.has(found.key)) continue
        seen.add(found.key)
        keys.push({ key: found.key, fingerprint: found.fingerprint.toLowerCase() })
      }
      return Promise.resolve(keys)
    },
    size() {
      const rows = (db.prepare(`SELECT count(*) AS n FROM ${TABLE}`).get() as { n: number }).n
      const pages = db.pragma('page_count', { simple: true }) as number
      const pageSize = db.pragma('page_size', { simple: true }) as number
      return Promise.resolve({ rows, bytes: pages * pageSize })
    },
    close() {
      store.close()
      connection.close()
      return Promise.resolve()
    },
  })
}

async function postgresSubject(context: BenchContext): Promise<GrowthSubject> {
  const pool = new pg.Pool({ connectionString: await context.services.freshPostgresDatabase() })
  const store = await createPostgresStore({ pool })
  const now = Date.now()
  return {
    store: store as unknown as Store<StoreTransaction>,
    fill: (count) => fillPostgres(pool, TABLE, count, { createdAt: now, expiresAt: now + DAY_MS }),
    async sampleKeys(count) {
      const {
        rows: [estimate],
      } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${TABLE}`)
      const total = Number(estimate?.n ?? 1)
      const percent = Math.min(100, ((count * 4) / Math.max(1, total)) * 100)
      const { rows } = await pool.query<{ key: string; fingerprint: string }>(
        `SELECT key, fingerprint FROM ${TABLE} TABLESAMPLE BERNOULLI ($1) WHERE state = 'completed'
          ORDER BY random() LIMIT $2`,
        [percent, count],
      )
      return rows
    },
    async size() {
      const {
        rows: [row],
      } = await pool.query<{ rows: string; bytes: string }>(
        `SELECT (SELECT count(*) FROM ${TABLE}) AS rows, pg_total_relation_size('${TABLE}') AS bytes`,
      )
      return { rows: Number(row?.rows ?? 0), bytes: Number(row?.bytes ?? 0) }
    },
    async close() {
      await store.close()
      await pool.end()
    },
  }
}

export async function runGrowthGroup(context: BenchContext): Promise<GroupReport> {
  const sizes = GROWTH_SIZES.filter((size) => size <= context.growthMax)
  const budgetMs = Math.max(500, Math.min(5_000, context.settings.seconds * 1000))
  const results: { store: string; sizes: SizeResult[]; error?: string }[] = []
  for (const [name, make] of [
    ['SQLite', sqliteSubject],
    ['PostgreSQL', postgresSubject],
  ] as const) {
    const measured: SizeResult[] = []
    let subject: GrowthSubject | undefined
    try {
      subject = await make(context)
      let filled = 0
      for (const size of sizes) {
        const started = Date.now()
        // The records the measurements themselves added count towards the next size.
        const { rows } = await subject.size()
        filled = rows
        if (size > filled) await subject.fill(size - filled)
        const fillSeconds = (Date.now() - started) / 1000
        const result = await measureSize(subject, size, fillSeconds, budgetMs)
        measured.push(result)
        context.log(
          `growth ${name} ${formatNumber(size)}: claim p50 ${result.firstClaim.p50.toFixed(0)} µs, with completion ${result.firstWithCompletion.p50.toFixed(0)} µs, replay ${result.replay.p50.toFixed(0)} µs, ${result.bytesPerRecord.toFixed(0)} B/record (fill ${fillSeconds.toFixed(1)} s)`,
        )
      }
      results.push({ store: name, sizes: measured })
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      context.log(`growth ${name} failed: ${message}`)
      results.push({ store: name, sizes: measured, error: message })
    } finally {
      await subject?.close()
    }
  }
  const us = (latency: Latency) => `${formatNumber(latency.p50)} / ${formatNumber(latency.p99)}`
  const table = markdownTable(
    [
      { title: 'store' },
      { title: 'records', align: 'right' },
      { title: 'first claim p50 / p99 µs', align: 'right' },
      { title: 'claim + completion p50 / p99 µs', align: 'right' },
      { title: 'replay p50 / p99 µs', align: 'right' },
      { title: 'vs smallest (claim / +completion / replay, p50)', align: 'right' },
      { title: 'bytes/record', align: 'right' },
    ],
    results.flatMap(({ store, sizes: measured }) => {
      const base = measured[0]
      return measured.map((result) => [
        store,
        formatNumber(result.records),
        us(result.firstClaim),
        us(result.firstWithCompletion),
        us(result.replay),
        base === undefined
          ? ''
          : [
              result.firstClaim.p50 / base.firstClaim.p50,
              result.firstWithCompletion.p50 / base.firstWithCompletion.p50,
              result.replay.p50 / base.replay.p50,
            ]
              .map((ratio) => formatNumber(ratio, 2))
              .join(' / '),
        formatNumber(result.bytesPerRecord),
      ])
    }),
  )
  const notes = results
    .filter((r) => r.error !== undefined)
    .map((r) => `- ${r.store} stopped early: ${r.error ?? ''}`)
  return {
    markdown: [
      '## Growth',
      '',
      `Claim latency through the store API in the benchmark's process, one claim at a time, after up to ${String(WARM_UP_CALLS)} untimed calls, up to ${formatNumber(MAX_SAMPLES)} samples or ${String(budgetMs / 1000)} s per measurement, at each table size (${sizes.map((s) => formatNumber(s)).join(', ')} records; --growth-max sets the largest). "First claim" is a new key (then released, untimed); "claim + completion" also writes the record (SQLite group commit; PostgreSQL durable commits, default options); "replay" claims a key read back from the table, never cached before. Bytes per record: SQLite page_count × page_size / rows; PostgreSQL pg_total_relation_size / rows (table, indexes, TOAST).`,
      '',
      table,
      ...(notes.length > 0 ? ['', ...notes] : []),
    ].join('\n'),
    json: results,
  }
}
