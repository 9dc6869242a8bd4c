/**
 * Group "server": the real Ticksupply server under load, keyed against unkeyed, on SQLite and
 * PostgreSQL. Creating a subscription needs a fresh (account, datastream) pair per request (a
 * second one is the business 409), so requests walk a pool of accounts × datastreams on a fresh
 * database per run; pausing can repeat forever; a replay is compared with a plain read.
 */
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import type { AutocannonRequest } from 'autocannon'
import type { BenchContext, GroupReport } from '../lib/context.js'
import { measureRounds } from '../lib/measure.js'
import type { Scenario, Summary } from '../lib/measure.js'
import { non2xx } from '../lib/load.js'
import type { BenchAccount } from '../lib/real-server.js'
import { benchAccounts, datastreamIds, startRealServer, subscribe } from '../lib/real-server.js'
import { formatNumber, formatSigned, markdownTable } from '../lib/table.js'

export const SERVER_ACCOUNTS = 100

export type Database = 'sqlite' | 'postgres'
export type ServerRequest =
  'create-keyed' | 'create-unkeyed' | 'pause-keyed' | 'pause-unkeyed' | 'replay' | 'get'

export const SERVER_REQUESTS: readonly ServerRequest[] = [
  'create-keyed',
  'create-unkeyed',
  'pause-keyed',
  'pause-unkeyed',
  'replay',
  'get',
]

const TITLES: Record<ServerRequest, { request: string; variant: string; expected: string }> = {
  'create-keyed': { request: 'POST /v1/subscriptions', variant: 'keyed, first', expected: '201' },
  'create-unkeyed': { request: 'POST /v1/subscriptions', variant: 'unkeyed', expected: '201' },
  'pause-keyed': {
    request: 'POST /v1/subscriptions/{id}/pause',
    variant: 'keyed, first',
    expected: '204',
  },
  'pause-unkeyed': {
    request: 'POST /v1/subscriptions/{id}/pause',
    variant: 'unkeyed',
    expected: '204',
  },
  replay: { request: 'POST /v1/subscriptions', variant: 'keyed, replay', expected: '201' },
  get: { request: 'GET /v1/subscriptions/{id}', variant: 'plain read', expected: '200' },
}

/** What each row is compared with. */
const BASELINE: Partial<Record<ServerRequest, ServerRequest>> = {
  'create-keyed': 'create-unkeyed',
  'pause-keyed': 'pause-unkeyed',
  replay: 'get',
}

/** Pool sizes seen by the scenarios, for the report. */
const pools = new Map<Database, { accounts: number; datastreams: number }>()

async function freshDatabaseUrl(database: Database, context: BenchContext): Promise<string> {
  return database === 'sqlite'
    ? `sqlite:${join(context.dir, `server-${randomUUID()}.db`)}`
    : context.services.freshPostgresDatabase()
}

export function serverScenario(
  database: Database,
  request: ServerRequest,
  context: BenchContext,
  nodeFlags?: readonly string[],
): Scenario {
  return {
    id: `server:${database}:${request}`,
    async setUp() {
      const accounts = benchAccounts(SERVER_ACCOUNTS)
      const server = await startRealServer({
        databaseUrl: await freshDatabaseUrl(database, context),
        accounts,
        dir: context.dir,
        ...(nodeFlags === undefined ? {} : { nodeFlags }),
      })
      try {
        const first = accounts[0] as BenchAccount
        const datastreams = await datastreamIds(server.url, first.apiKey)
        pools.set(database, { accounts: accounts.length, datastreams: datastreams.length })
        return { server, next: await requestsFor(request, server.url, accounts, datastreams) }
      } catch (error) {
        await server.stop()
        throw error
      }
    },
  }
}

async function requestsFor(
  request: ServerRequest,
  url: string,
  accounts: readonly BenchAccount[],
  datastreams: readonly number[],
): Promise<() => AutocannonRequest> {
  const json = (apiKey: string, body: string, key?: string): AutocannonRequest => ({
    method: 'POST',
    path: '/v1/subscriptions',
    headers: {
      'content-type': 'application/json',
      'x-api-key': apiKey,
      ...(key === undefined ? {} : { 'idempotency-key': key }),
    },
    body,
  })
  switch (request) {
    case 'create-keyed':
    case 'create-unkeyed': {
      // Account-major: consecutive requests go to different accounts. Past the pool, pairs
      // repeat and answer the business 409 (counted as non-2xx).
      const bodies = datastreams.map((id) => JSON.stringify({ datastream_id: id }))
      let next = 0
      return () => {
        const index = next++
        const account = accounts[index % accounts.length] as BenchAccount
        const body = bodies[Math.floor(index / accounts.length) % bodies.length] as string
        return json(account.apiKey, body, request === 'create-keyed' ? randomUUID() : undefined)
      }
    }
    case 'pause-keyed':
    case 'pause-unkeyed': {
      // One subscription per account, paused over and over (already paused: 204, no change).
      const targets = await Promise.all(
        accounts.map(async (account) => ({
          apiKey: account.apiKey,
          path: `/v1/subscriptions/${await subscribe(url, account.apiKey, datastreams[0] as number)}/pause`,
        })),
      )
      let next = 0
      return () => {
        const target = targets[next++ % targets.length] as (typeof targets)[number]
        return {
          method: 'POST',
          path: target.path,
          headers: {
            'x-api-key': target.apiKey,
            ...(request === 'pause-keyed' ? { 'idempotency-key': randomUUID() } : {}),
          },
        }
      }
    }
    case 'replay': {
      const account = accounts[0] as BenchAccount
      const key = randomUUID()
      const body = JSON.stringify({ datastream_id: datastreams[1] })
      await subscribe(url, account.apiKey, datastreams[1] as number, key)
      return () => json(account.apiKey, body, key)
    }
    case 'get': {
      const account = accounts[0] as BenchAccount
      const id = await subscribe(url, account.apiKey, datastreams[1] as number)
      return () => ({
        method: 'GET',
        path: `/v1/subscriptions/${id}`,
        headers: { 'x-api-key': account.apiKey },
      })
    }
  }
}

export async function runServerGroup(context: BenchContext): Promise<GroupReport> {
  const databases: Database[] = ['sqlite']
  const notes: string[] = []
  try {
    await context.services.postgres()
    databases.push('postgres')
  } catch (error) {
    notes.push(`- Not available: PostgreSQL could not be started: ${String(error)}`)
  }
  const scenarios = databases.flatMap((database) =>
    SERVER_REQUESTS.map((request) => ({
      database,
      request,
      scenario: serverScenario(database, request, context),
    })),
  )
  const failed = new Map<string, string>()
  const summaries = await measureRounds(
    scenarios.map((s) => s.scenario),
    context.settings,
    context.log,
    failed,
  )
  for (const [id, why] of failed) notes.push(`- Failed to run: ${id}: ${why}`)
  const find = (database: Database, request: ServerRequest) =>
    summaries.get(`server:${database}:${request}`)
  const rows = scenarios.flatMap(({ database, request }) => {
    const summary = find(database, request)
    if (summary === undefined) return []
    const baselineRequest = BASELINE[request]
    const baseline = baselineRequest === undefined ? undefined : find(database, baselineRequest)
    return [{ database, request, summary, baseline, baselineRequest }]
  })
  const table = markdownTable(
    [
      { title: 'database' },
      { title: 'request' },
      { title: 'variant' },
      { title: 'req/s', align: 'right' },
      { title: 'ratio', align: 'right' },
      { title: 'p50 ms', align: 'right' },
      { title: 'p99 ms', align: 'right' },
      { title: 'CPU µs/req', align: 'right' },
      { title: 'added CPU µs/req', align: 'right' },
      { title: 'non-2xx', align: 'right' },
    ],
    rows.map(({ database, request, summary, baseline, baselineRequest }) => [
      database === 'sqlite' ? 'SQLite' : 'PostgreSQL',
      TITLES[request].request,
      TITLES[request].variant,
      formatNumber(summary.rps),
      baseline === undefined || baselineRequest === undefined
        ? '—'
        : `${formatNumber(summary.rps / baseline.rps, 2)} of ${TITLES[baselineRequest].variant}`,
      formatNumber(summary.p50, 1),
      formatNumber(summary.p99, 1),
      formatNumber(summary.cpuPerRequest, 1),
      baseline === undefined ? '—' : formatSigned(summary.cpuPerRequest - baseline.cpuPerRequest),
      describe(summary, TITLES[request].expected),
    ]),
  )
  const poolLines = [...pools].map(
    ([database, pool]) =>
      `- ${database === 'sqlite' ? 'SQLite' : 'PostgreSQL'}: ${formatNumber(pool.accounts)} accounts × ${formatNumber(pool.datastreams)} datastreams = ${formatNumber(pool.accounts * pool.datastreams)} fresh (account, datastream) pairs per run; a create past them would answer the business 409.`,
  )
  const { rounds, seconds, warmupSeconds, connections } = context.settings
  return {
    markdown: [
      '## The real server',
      '',
      `packages/server/dist/main.js on a fresh database per run (SQLite file; PostgreSQL database with durable commits), ${String(SERVER_ACCOUNTS)} accounts, rate limits out of reach, LOG_LEVEL=silent. ${String(connections)} connections, ${String(warmupSeconds)} s warm-up + ${String(seconds)} s measured, medians of ${String(rounds)} interleaved rounds. Keyed rows are compared with the same request unkeyed; the replay with a plain read of the subscription.`,
      '',
      table,
      '',
      ...poolLines,
      ...notes,
    ].join('\n'),
    json: {
      pools: Object.fromEntries(pools),
      rows: rows.map(({ database, request, summary, baseline }) => ({
        database,
        request,
        ratio: baseline === undefined ? null : summary.rps / baseline.rps,
        ...summary,
      })),
      failed: Object.fromEntries(failed),
    },
  }
}

function describe(summary: Summary, expected: string): string {
  const count = non2xx(summary.statuses) + summary.errors
  const parts = Object.entries(summary.statuses)
    .filter(([code]) => code !== expected)
    .map(([code, n]) => `${formatNumber(n)} × ${code}`)
  if (summary.errors > 0) parts.push(`${formatNumber(summary.errors)} errors`)
  return parts.length === 0 ? formatNumber(count) : `${formatNumber(count)} (${parts.join(', ')})`
}
