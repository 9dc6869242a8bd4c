/**
 * Group "storm": 1,000 concurrent clients send the same key and body at once, to an operation
 * of 200 ms. A purpose-built Fastify app (apps/orders-app.ts in storm mode: the quick-start
 * mount, a handler that sleeps 200 ms and counts its runs) is used rather than the real server,
 * so that each instance can say when it sent every answer, on the machine's monotonic clock:
 * what the waiters' latency is on the server, apart from the load generator's own time to read
 * 1,000 answers.
 */
import { randomUUID } from 'node:crypto'
import { Agent, request as httpRequest } from 'node:http'
import type { BenchContext, GroupReport } from '../lib/context.js'
import type { OrdersServer } from '../lib/orders-server.js'
import { startOrdersServer } from '../lib/orders-server.js'
import { max, median, quantile } from '../lib/stats.js'
import { formatNumber, markdownTable } from '../lib/table.js'
import { ORDER_BODY } from './handler.js'

export const STORM_CLIENTS = 1_000
export const STORM_OPERATION_MS = 200

interface StormSetup {
  readonly title: string
  readonly layer: 'sqlite' | 'postgres'
  readonly instances: number
}

const SETUPS: readonly StormSetup[] = [
  { title: 'SQLite, one instance', layer: 'sqlite', instances: 1 },
  { title: 'PostgreSQL, one instance', layer: 'postgres', instances: 1 },
  { title: 'PostgreSQL, three instances', layer: 'postgres', instances: 3 },
]

interface ClientAnswer {
  readonly status: number
  readonly replayed: boolean
  readonly atNs: bigint
}

export interface StormResult {
  readonly executions: number
  readonly statuses: Readonly<Record<string, number>>
  /** Answers that were replays (the waiters that got the original's response). */
  readonly replayed: number
  /** Waiters' answers after the original's, in ms: as sent by the servers, as read by clients. */
  readonly server: { p50: number; p99: number; max: number }
  readonly client: { p50: number; p99: number; max: number }
  /** The original's answer, from the storm's start, in ms. */
  readonly originalAfterMs: number
}

function send(
  url: string,
  agent: Agent,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<ClientAnswer> {
  const target = new URL(path, url)
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method,
        agent,
        headers:
          body === undefined ? headers : { ...headers, 'content-length': Buffer.byteLength(body) },
        timeout: 30_000,
      },
      (res) => {
        res.resume()
        res.once('end', () => {
          resolve({
            status: res.statusCode ?? 0,
            replayed: res.headers['idempotent-replayed'] === 'true',
            atNs: process.hrtime.bigint(),
          })
        })
        res.once('error', reject)
      },
    )
    req.once('timeout', () => req.destroy(new Error('timed out')))
    req.once('error', reject)
    req.end(body)
  })
}

/** Opens `count` keep-alive connections to `url` (in batches: the listen backlog is finite). */
async function openConnections(url: string, agent: Agent, count: number): Promise<void> {
  for (let opened = 0; opened < count; opened += 200) {
    const batch = Math.min(200, count - opened)
    await Promise.all(Array.from({ length: batch }, () => send(url, agent, 'GET', '/warm-up', {})))
  }
}

export async function runStorm(
  servers: readonly OrdersServer[],
  clients: number,
): Promise<StormResult> {
  const agents = servers.map(() => new Agent({ keepAlive: true, maxSockets: Infinity }))
  try {
    await Promise.all(
      servers.map((server, index) =>
        openConnections(server.url, agents[index] as Agent, Math.ceil(clients / servers.length)),
      ),
    )
    const key = randomUUID()
    const headers = { 'content-type': 'application/json', 'idempotency-key': key }
    const startNs = process.hrtime.bigint()
    const answers = await Promise.all(
      Array.from({ length: clients }, (_, index) => {
        const which = index % servers.length
        const server = servers[which] as OrdersServer
        return send(server.url, agents[which] as Agent, 'POST', '/orders', headers, ORDER_BODY)
      }),
    )
    const stats = await Promise.all(servers.map((server) => server.stats()))
    const executions = stats.reduce((total, s) => total + s.runs, 0)
    const sent = stats
      .flatMap((s) => s.answers)
      .map((a) => ({ ...a, at: BigInt(a.atNs) }))
      .filter((a) => a.at >= startNs && a.status !== 404)
    const statuses: Record<string, number> = {}
    for (const answer of answers) {
      statuses[String(answer.status)] = (statuses[String(answer.status)] ?? 0) + 1
    }
    const serverOriginal = sent.find((a) => !a.replayed && a.status === 201)
    const clientOriginal = answers.find((a) => !a.replayed && a.status === 201)
    const after = (list: readonly { at: bigint }[], from: bigint | undefined) =>
      from === undefined ? [] : list.map((a) => Number(a.at - from) / 1e6)
    const serverWaits = after(
      sent.filter((a) => a.replayed),
      serverOriginal?.at,
    )
    const clientWaits = after(
      answers.filter((a) => a.replayed).map((a) => ({ at: a.atNs })),
      clientOriginal?.atNs,
    )
    const spread = (values: number[]) => ({
      p50: quantile(values, 0.5),
      p99: quantile(values, 0.99),
      max: max(values),
    })
    return {
      executions,
      statuses,
      replayed: answers.filter((a) => a.replayed).length,
      server: spread(serverWaits),
      client: spread(clientWaits),
      originalAfterMs:
        serverOriginal === undefined ? Number.NaN : Number(serverOriginal.at - startNs) / 1e6,
    }
  } finally {
    for (const agent of agents) agent.destroy()
  }
}

export async function runStormGroup(context: BenchContext): Promise<GroupReport> {
  const rows: { setup: StormSetup; results: StormResult[]; error?: string }[] = []
  for (const setup of SETUPS) {
    const results: StormResult[] = []
    let error: string | undefined
    for (let round = 0; round < context.settings.rounds && error === undefined; round++) {
      const servers: OrdersServer[] = []
      try {
        const postgresUrl =
          setup.layer === 'postgres' ? await context.services.freshPostgresDatabase() : undefined
        for (let i = 0; i < setup.instances; i++) {
          servers.push(
            await startOrdersServer(setup.layer, {
              dir: context.dir,
              handlerDelayMs: STORM_OPERATION_MS,
              ...(postgresUrl === undefined ? {} : { postgresUrl }),
            }),
          )
        }
        const result = await runStorm(servers, STORM_CLIENTS)
        results.push(result)
        context.log(
          `storm ${setup.title}, round ${String(round + 1)}: ${String(result.executions)} execution(s), waiters p99 ${result.server.p99.toFixed(1)} ms after the original (server), ${result.client.p99.toFixed(1)} ms (client)`,
        )
      } catch (caught) {
        error = caught instanceof Error ? caught.message : String(caught)
        context.log(`storm ${setup.title} failed: ${error}`)
      } finally {
        await Promise.all(servers.map((server) => server.stop()))
      }
    }
    rows.push({ setup, results, ...(error === undefined ? {} : { error }) })
  }
  const ms = (value: number) => formatNumber(value, 1)
  const table = markdownTable(
    [
      { title: 'set-up' },
      { title: 'executions', align: 'right' },
      { title: 'answers', align: 'right' },
      { title: 'replays', align: 'right' },
      { title: 'waiters after the original, server p50 / p99 / max ms', align: 'right' },
      { title: 'client p50 / p99 / max ms', align: 'right' },
    ],
    rows.map(({ setup, results, error }) => {
      if (results.length === 0)
        return [setup.title, `failed: ${error ?? 'no result'}`, '', '', '', '']
      const pick = (fn: (r: StormResult) => number) => median(results.map(fn))
      const statuses: Record<string, number> = {}
      for (const result of results) {
        for (const [code, n] of Object.entries(result.statuses))
          statuses[code] = (statuses[code] ?? 0) + n
      }
      return [
        setup.title,
        results.map((r) => String(r.executions)).join(', '),
        Object.entries(statuses)
          .map(([code, n]) => `${formatNumber(n / results.length)} × ${code}`)
          .join(', '),
        formatNumber(pick((r) => r.replayed)),
        `${ms(pick((r) => r.server.p50))} / ${ms(pick((r) => r.server.p99))} / ${ms(pick((r) => r.server.max))}`,
        `${ms(pick((r) => r.client.p50))} / ${ms(pick((r) => r.client.p99))} / ${ms(pick((r) => r.client.max))}`,
      ]
    }),
  )
  return {
    markdown: [
      '## Duplicate storms',
      '',
      `${formatNumber(STORM_CLIENTS)} clients (keep-alive connections opened beforehand, an Agent of unlimited sockets) send one key and body at once; the operation takes ${String(STORM_OPERATION_MS)} ms. Purpose-built Fastify app (the quick-start mount, a handler that sleeps and counts its runs), every instance pinned to CPU 0; across three instances the clients are spread evenly. "Executions" is per round (must be 1); answers are per round (medians of ${String(context.settings.rounds)} rounds). Waiters' latency is from the original's answer to theirs: as the servers sent them (onResponse, monotonic clock) and as the load generator read them.`,
      '',
      table,
    ].join('\n'),
    json: rows.map(({ setup, results, error }) => ({ ...setup, results, error: error ?? null })),
  }
}
