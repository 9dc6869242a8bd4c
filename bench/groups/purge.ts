/**
 * Group "purge": how many expired records per second the purger deletes, as `startPurger` runs
 * it (`store.purgeExpired` in batches of 500, one after another), from a table of expired
 * records followed by live ones; set next to the peak keyed write rate the handler group
 * measured, which the purge must keep up with.
 */
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import pg from 'pg'
import { startPurger } from '@ticksupply/idempotency'
import type { Store, StoreTransaction } from '@ticksupply/idempotency'
import { createSqliteStore, openSqliteConnection } from '@ticksupply/idempotency/stores/sqlite'
import { createPostgresStore } from '@ticksupply/idempotency/stores/postgres'
import type { BenchContext, GroupReport } from '../lib/context.js'
import { fillPostgres, fillSqlite } from '../lib/fill.js'
import { formatNumber, markdownTable } from '../lib/table.js'

const TABLE = 'idempotency_records'
export const PURGE_EXPIRED = 200_000
export const PURGE_LIVE = 100_000
const BATCH = 500
/** startPurger's defaults: a run is at most 20 batches of 500; a full run is a backlog. */
const PURGER_RUN = 20 * BATCH
const BUDGET_MS = 60_000
const DAY_MS = 86_400_000

interface PurgeResult {
  readonly deleted: number
  readonly seconds: number
  readonly perSecond: number
  readonly batches: number
  /** Live records left afterwards (must be all of them). */
  readonly liveLeft: number
}

interface PurgeSubject {
  readonly store: Store<StoreTransaction>
  fill(expired: number, live: number): Promise<void>
  count(): Promise<number>
  close(): Promise<void>
}

function sqliteSubject(context: BenchContext): Promise<PurgeSubject> {
  const connection = openSqliteConnection(join(context.dir, `purge-${randomUUID()}.db`))
  const store = createSqliteStore({ connection })
  const db = connection.database
  return Promise.resolve({
    store,
    fill(expired, live) {
      const now = Date.now()
      // Expired first: rows arrive in expiry order, as in use.
      fillSqlite(db, TABLE, expired, { createdAt: now - 2 * DAY_MS, expiresAt: now - DAY_MS })
      fillSqlite(db, TABLE, live, { createdAt: now, expiresAt: now + DAY_MS })
      return Promise.resolve()
    },
    count: () =>
      Promise.resolve((db.prepare(`SELECT count(*) AS n FROM ${TABLE}`).get() as { n: number }).n),
    close() {
      store.close()
      connection.close()
      return Promise.resolve()
    },
  })
}

async function postgresSubject(context: BenchContext): Promise<PurgeSubject> {
  const pool = new pg.Pool({ connectionString: await context.services.freshPostgresDatabase() })
  const store = await createPostgresStore({ pool })
  return {
    store: store as unknown as Store<StoreTransaction>,
    async fill(expired, live) {
      const now = Date.now()
      await fillPostgres(pool, TABLE, expired, {
        createdAt: now - 2 * DAY_MS,
        expiresAt: now - DAY_MS,
      })
      await fillPostgres(pool, TABLE, live, { createdAt: now, expiresAt: now + DAY_MS })
    },
    async count() {
      const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${TABLE}`)
      return Number(rows[0]?.n ?? 0)
    },
    async close() {
      await store.close()
      await pool.end()
    },
  }
}

/** `store.purgeExpired(500)` back to back until a short batch: what the store can do. */
async function purgeBackToBack(subject: PurgeSubject): Promise<PurgeResult> {
  await subject.fill(PURGE_EXPIRED, PURGE_LIVE)
  let deleted = 0
  let batches = 0
  const started = process.hrtime.bigint()
  const deadline = Date.now() + BUDGET_MS
  for (;;) {
    const n = await subject.store.purgeExpired(BATCH)
    deleted += n
    batches++
    if (n < BATCH || Date.now() > deadline) break
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return {
    deleted,
    seconds,
    perSecond: deleted / seconds,
    batches,
    liveLeft: await subject.count(),
  }
}

/**
 * `startPurger(store)` with its defaults, from its start until a run finds no backlog: what an
 * application gets (runs of 20 batches; after a full run, a rest as long as the run took).
 */
async function purgeWithPurger(subject: PurgeSubject): Promise<PurgeResult> {
  await subject.fill(PURGE_EXPIRED, PURGE_LIVE)
  let deleted = 0
  let runs = 0
  const started = process.hrtime.bigint()
  let finished: () => void = () => undefined
  let failed: (error: unknown) => void = () => undefined
  const done = new Promise<void>((resolve, reject) => {
    finished = resolve
    failed = reject
  })
  const purger = startPurger(subject.store, {
    onRun: (n) => {
      deleted += n
      runs++
      if (n < PURGER_RUN) finished()
    },
    onError: (error) => {
      failed(error)
    },
  })
  const timer = setTimeout(finished, BUDGET_MS)
  try {
    await done
  } finally {
    clearTimeout(timer)
    await purger.stop()
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return {
    deleted,
    seconds,
    perSecond: deleted / seconds,
    batches: runs,
    liveLeft: await subject.count(),
  }
}

const METHODS = [
  {
    id: 'back-to-back',
    title: `purgeExpired(${String(BATCH)}) back to back`,
    run: purgeBackToBack,
  },
  { id: 'purger', title: 'startPurger, defaults', run: purgeWithPurger },
] as const

export async function runPurgeGroup(context: BenchContext): Promise<GroupReport> {
  const rows: {
    store: 'sqlite' | 'postgres'
    title: string
    method: (typeof METHODS)[number]
    result?: PurgeResult
    error?: string
  }[] = []
  for (const [store, title, make] of [
    ['sqlite', 'SQLite', sqliteSubject],
    ['postgres', 'PostgreSQL', postgresSubject],
  ] as const) {
    for (const method of METHODS) {
      let subject: PurgeSubject | undefined
      try {
        subject = await make(context)
        const result = await method.run(subject)
        rows.push({ store, title, method, result })
        context.log(`purge ${title}, ${method.title}: ${formatNumber(result.perSecond)} records/s`)
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error)
        context.log(`purge ${title}, ${method.title} failed: ${message}`)
        rows.push({ store, title, method, error: message })
      } finally {
        await subject?.close()
      }
    }
  }
  const table = markdownTable(
    [
      { title: 'store' },
      { title: 'purged by' },
      { title: 'deleted', align: 'right' },
      { title: 'seconds', align: 'right' },
      { title: 'records/s', align: 'right' },
      { title: 'peak keyed write rate (handler group) req/s', align: 'right' },
      { title: 'purge / writes', align: 'right' },
      { title: 'live records left', align: 'right' },
    ],
    rows.map(({ store, title, method, result, error }) => {
      if (result === undefined)
        return [title, method.title, `failed: ${error ?? ''}`, '', '', '', '', '']
      const peak = context.peakWriteRates.get(store)
      return [
        title,
        method.title,
        formatNumber(result.deleted),
        formatNumber(result.seconds, 2),
        formatNumber(result.perSecond),
        peak === undefined ? 'n/a (handler group not run)' : formatNumber(peak),
        peak === undefined ? 'n/a' : formatNumber(result.perSecond / peak, 2),
        `${formatNumber(result.liveLeft)} of ${formatNumber(PURGE_LIVE)}`,
      ]
    }),
  )
  return {
    markdown: [
      '## Purge rate',
      '',
      `${formatNumber(PURGE_EXPIRED)} expired records followed by ${formatNumber(PURGE_LIVE)} live ones (bulk SQL, a fresh table each time), then purged in the benchmark's process (at most ${String(BUDGET_MS / 1000)} s): by \`store.purgeExpired(${String(BATCH)})\` back to back until a short batch (what the store can do), and by \`startPurger(store)\` with its defaults from its start until a run finds no backlog (what an application gets: runs of 20 batches; after a full one, a rest as long as it took). The peak keyed write rate is the same store's first-request rate in this run's handler group.`,
      '',
      table,
    ].join('\n'),
    json: rows.map(({ store, method, result, error }) => ({
      store,
      method: method.id,
      ...result,
      peakWriteRate: context.peakWriteRates.get(store) ?? null,
      error: error ?? null,
    })),
  }
}
