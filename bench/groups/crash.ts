/**
 * Group "crash": how long a key stays blocked when the process running its operation dies, on
 * the real server (TICKSUPPLY_TEST_HANDLER_DELAY_MS keeps the operation running while it is
 * killed). The retry loop asks every 25 ms; each case also counts how often the operation ran
 * (the subscription exists once, and the servers' claim counters).
 */
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { BenchContext, GroupReport } from '../lib/context.js'
import type { BenchAccount, RealServer } from '../lib/real-server.js'
import { benchAccounts, startRealServer } from '../lib/real-server.js'
import { median } from '../lib/stats.js'
import { formatNumber, markdownTable } from '../lib/table.js'

/** The operation sleeps this long once claimed: long enough to be killed mid-way. */
const OPERATION_MS = 5_000
/** The lease of the frozen-instance case. */
export const FROZEN_LEASE_MS = 5_000
const RETRY_EVERY_MS = 25
const RETRY_FOR_MS = 60_000
const DATASTREAM = 7

interface CrashResult {
  /** SQLite: kill to the restarted server listening. */
  readonly restartMs?: number
  /** From the kill (or stop) to the retry's 201, or from listening to it (SQLite). */
  readonly retryMs: number
  readonly retries: number
  /** Subscriptions to the datastream afterwards (1: the operation ran once). */
  readonly subscriptions: number
  /** Claims counted by the servers that answered (1 when the retry ran it, 0 for a replay). */
  readonly claims: number
}

interface Case {
  readonly title: string
  readonly database: 'sqlite' | 'postgres'
  run(context: BenchContext): Promise<CrashResult>
}

function keyedCreate(server: RealServer, account: BenchAccount, key: string) {
  return fetch(`${server.url}/v1/subscriptions`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-api-key': account.apiKey,
      'idempotency-key': key,
    },
    body: JSON.stringify({ datastream_id: DATASTREAM }),
  })
}

/** Sends the create that will not be answered (its server dies); never rejects. */
function doomedCreate(server: RealServer, account: BenchAccount, key: string): Promise<void> {
  return keyedCreate(server, account, key).then(
    async (response) => {
      await response.arrayBuffer()
    },
    () => undefined,
  )
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

/** Retries the create until it is not "still in progress"; resolves when it answers 201. */
async function retryUntilCreated(
  server: RealServer,
  account: BenchAccount,
  key: string,
): Promise<{ retries: number; doneNs: bigint }> {
  const deadline = Date.now() + RETRY_FOR_MS
  for (let retries = 1; Date.now() < deadline; retries++) {
    const response = await keyedCreate(server, account, key).catch(() => undefined)
    const text = response === undefined ? '' : await response.text()
    if (response?.status === 201) return { retries, doneNs: process.hrtime.bigint() }
    const stillRunning = response?.status === 409 && text.includes('still in progress')
    if (response !== undefined && !stillRunning && response.status !== 503) {
      throw new Error(`the retry answered ${String(response.status)}: ${text}`)
    }
    await sleep(RETRY_EVERY_MS)
  }
  throw new Error(`the key was still blocked after ${String(RETRY_FOR_MS)} ms`)
}

async function subscriptionsTo(server: RealServer, account: BenchAccount): Promise<number> {
  const response = await fetch(`${server.url}/v1/subscriptions?limit=100`, {
    headers: { 'x-api-key': account.apiKey },
  })
  const body = (await response.json()) as { items: { datastream_id: number }[] }
  return body.items.filter((item) => item.datastream_id === DATASTREAM).length
}

const elapsedMs = (fromNs: bigint, toNs: bigint) => Number(toNs - fromNs) / 1e6

async function withServers<T>(fn: (started: RealServer[]) => Promise<T>): Promise<T> {
  const started: RealServer[] = []
  try {
    return await fn(started)
  } finally {
    for (const server of started) {
      server.signal('SIGCONT')
      server.signal('SIGKILL')
      await server.exited
    }
  }
}

const CASES: readonly Case[] = [
  {
    title: 'SQLite: SIGKILL mid-operation, restart, retry',
    database: 'sqlite',
    run: (context) =>
      withServers(async (started) => {
        const [account] = benchAccounts(1) as [BenchAccount]
        const databaseUrl = `sqlite:${join(context.dir, `crash-${randomUUID()}.db`)}`
        const key = randomUUID()
        const doomed = await startRealServer({
          databaseUrl,
          accounts: [account],
          dir: context.dir,
          env: { TICKSUPPLY_TEST_HANDLER_DELAY_MS: String(OPERATION_MS) },
        })
        started.push(doomed)
        const lost = doomedCreate(doomed, account, key)
        await until(async () => (await doomed.metric('claims')) === 1, 'the claim')
        const killedNs = process.hrtime.bigint()
        doomed.signal('SIGKILL')
        await doomed.exited
        await lost
        const restarted = await startRealServer({
          databaseUrl,
          accounts: [account],
          dir: context.dir,
        })
        started.push(restarted)
        const listeningNs = process.hrtime.bigint()
        const { retries, doneNs } = await retryUntilCreated(restarted, account, key)
        return {
          restartMs: elapsedMs(killedNs, listeningNs),
          retryMs: elapsedMs(listeningNs, doneNs),
          retries,
          subscriptions: await subscriptionsTo(restarted, account),
          claims: (await restarted.metric('claims')) + (await restarted.metric('claims_takeover')),
        }
      }),
  },
  {
    title: 'PostgreSQL: SIGKILL mid-operation, retry on another instance',
    database: 'postgres',
    run: (context) =>
      withServers(async (started) => {
        const [account] = benchAccounts(1) as [BenchAccount]
        const databaseUrl = await context.services.freshPostgresDatabase()
        const key = randomUUID()
        const doomed = await startRealServer({
          databaseUrl,
          accounts: [account],
          dir: context.dir,
          env: { TICKSUPPLY_TEST_HANDLER_DELAY_MS: String(OPERATION_MS) },
        })
        started.push(doomed)
        const other = await startRealServer({ databaseUrl, accounts: [account], dir: context.dir })
        started.push(other)
        const lost = doomedCreate(doomed, account, key)
        await until(async () => (await doomed.metric('claims')) === 1, 'the claim')
        const killedNs = process.hrtime.bigint()
        doomed.signal('SIGKILL')
        const { retries, doneNs } = await retryUntilCreated(other, account, key)
        await lost
        return {
          retryMs: elapsedMs(killedNs, doneNs),
          retries,
          subscriptions: await subscriptionsTo(other, account),
          claims: (await other.metric('claims')) + (await other.metric('claims_takeover')),
        }
      }),
  },
  {
    title: `PostgreSQL: SIGSTOP mid-operation (frozen, connections open), lease ${String(FROZEN_LEASE_MS)} ms, retry on another instance`,
    database: 'postgres',
    run: (context) =>
      withServers(async (started) => {
        const [account] = benchAccounts(1) as [BenchAccount]
        const databaseUrl = await context.services.freshPostgresDatabase()
        const key = randomUUID()
        const lease = { IDEMPOTENCY_LEASE_MS: String(FROZEN_LEASE_MS) }
        const frozen = await startRealServer({
          databaseUrl,
          accounts: [account],
          dir: context.dir,
          env: { ...lease, TICKSUPPLY_TEST_HANDLER_DELAY_MS: String(OPERATION_MS) },
        })
        started.push(frozen)
        const other = await startRealServer({
          databaseUrl,
          accounts: [account],
          dir: context.dir,
          env: lease,
        })
        started.push(other)
        const lost = doomedCreate(frozen, account, key)
        await until(async () => (await frozen.metric('claims')) === 1, 'the claim')
        const stoppedNs = process.hrtime.bigint()
        frozen.signal('SIGSTOP')
        const { retries, doneNs } = await retryUntilCreated(other, account, key)
        // Thawed, the frozen instance finishes its operation: its completion must find the key
        // taken over and roll back, so the subscription still exists once.
        frozen.signal('SIGCONT')
        await Promise.race([lost, sleep(OPERATION_MS + 5_000)])
        return {
          retryMs: elapsedMs(stoppedNs, doneNs),
          retries,
          subscriptions: await subscriptionsTo(other, account),
          claims: (await other.metric('claims')) + (await other.metric('claims_takeover')),
        }
      }),
  },
]

export async function runCrashGroup(context: BenchContext): Promise<GroupReport> {
  const rows: { title: string; results: CrashResult[]; error?: string }[] = []
  for (const crashCase of CASES) {
    const results: CrashResult[] = []
    let error: string | undefined
    if (crashCase.database === 'postgres') {
      try {
        await context.services.postgres()
      } catch (caught) {
        error = `PostgreSQL could not be started: ${String(caught)}`
      }
    }
    for (let round = 0; round < context.settings.rounds && error === undefined; round++) {
      try {
        const result = await crashCase.run(context)
        results.push(result)
        context.log(
          `${crashCase.title}, round ${String(round + 1)}: retry's 201 after ${result.retryMs.toFixed(0)} ms, ${String(result.subscriptions)} subscription(s)`,
        )
      } catch (caught) {
        error = caught instanceof Error ? caught.message : String(caught)
        context.log(`${crashCase.title} failed: ${error}`)
      }
    }
    rows.push({ title: crashCase.title, results, ...(error === undefined ? {} : { error }) })
  }
  const table = markdownTable(
    [
      { title: 'case' },
      { title: 'kill to listening ms', align: 'right' },
      { title: 'to the retry’s 201 ms', align: 'right' },
      { title: 'retries', align: 'right' },
      { title: 'subscriptions', align: 'right' },
      { title: 'claims on the retrying server', align: 'right' },
    ],
    rows.map(({ title, results, error }) => {
      if (results.length === 0) return [title, `failed: ${error ?? 'no result'}`, '', '', '', '']
      const restart = results.map((r) => r.restartMs).filter((v): v is number => v !== undefined)
      return [
        title,
        restart.length === 0 ? '—' : formatNumber(median(restart)),
        formatNumber(median(results.map((r) => r.retryMs))),
        formatNumber(median(results.map((r) => r.retries))),
        results.map((r) => String(r.subscriptions)).join(', '),
        results.map((r) => String(r.claims)).join(', '),
      ]
    }),
  )
  return {
    markdown: [
      '## Crash recovery',
      '',
      `The real server; the operation (\`POST /v1/subscriptions\`, keyed) sleeps ${String(OPERATION_MS)} ms once claimed and its process is killed once the claim is counted. The retry asks every ${String(RETRY_EVERY_MS)} ms until it gets 201 (up to ${String(RETRY_FOR_MS / 1000)} s). SQLite: "to the retry's 201" counts from the restarted server listening; PostgreSQL: from the kill (or the SIGSTOP). Medians of ${String(context.settings.rounds)} rounds; subscriptions and claims per round (1 each: the operation ran once, the retry ran it).`,
      '',
      table,
      ...rows
        .filter((r) => r.error !== undefined && r.results.length > 0)
        .map((r) => `\n- ${r.title}: a later round failed: ${r.error ?? ''}`),
    ].join('\n'),
    json: rows,
  }
}
