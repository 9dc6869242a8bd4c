/**
 * Group "storm": 1,000 concurrent clients send the same key and body at once, to an operation
 * of 200 ms. A purpose-built Fastify app (apps/orders-app.ts in storm mode: the quick-start
 * mount, a handler that sleeps 200 ms and counts its runs) is used rather than the real server,
 * so that each instance can say when it sent every answer, on the machine's monotonic clock:
 * what the waiters' latency is on the server, apart from the load generator's own time to read
 * 1,000 answers.
 */
import { randomUUID } from 'node:crypto'
import { connect as netConnect } from 'node:net'
import type { BenchContext, GroupReport } from '../lib/context.js'
import type { OrdersServer } from '../lib/orders-server.js'
import { startOrdersServer } from '../lib/orders-server.js'
import { max, median, quantile } from '../lib/stats.js'
import { formatNumber, markdownTable } from '../lib/table.js'
import { ORDER_BODY } from './handler.js'

export const STORM_CLIENTS = 1_000
export const STORM_OPERATION_MS = 200
const WARM_UP_STORMS = 3

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

interface Spread {
  readonly p50: number
  readonly p99: number
  readonly max: number
}

export interface StormResult {
  readonly executions: number
  readonly statuses: Readonly<Record<string, number>>
  /** Answers that were replays (the waiters that got the original's response). */
  readonly replayed: number
  /** From the first request's arrival at a server to the last's, in ms. */
  readonly arrivalSpreadMs: number
  /** Replays of requests that arrived before the original answered: they waited for it. */
  readonly waiters: number
  /** The waiters' answers after the completion was stored, in ms, as the servers sent them. */
  readonly server: Spread
  /** The original's own answer after the completion, in ms. */
  readonly originalAnsweredMs: number
  /** The waiters' spread per instance (in the servers' order), and whether it ran the original. */
  readonly waitersByInstance: readonly (Spread & { readonly original: boolean })[]
  /** Replays of requests that arrived after the completion. */
  readonly late: number
  /** Their answer after their own arrival, in ms. */
  readonly lateAnswer: Spread
  /** Every replay's answer after the original's, in ms, as the clients read them. */
  readonly client: Spread
  /** The original's answer, from the storm's start, in ms. */
  readonly originalAfterMs: number
}

/**
 * One keep-alive connection of a storm client, written to directly: node:http's client takes
 * about a millisecond per request to put 1,000 of them on the wire (the server saw them arrive
 * over 1.3 s, so most came after the original had answered, and the "waiters" measured the load
 * generator). Pre-built request bytes on open sockets arrive within a few milliseconds of one
 * another, as 1,000 clients on their own machines would.
 */
interface StormConnection {
  /** Writes `request` and resolves once the whole answer (content-length framed) is read. */
  exchange(request: Buffer): Promise<ClientAnswer>
  close(): void
}

function connect(url: string): Promise<StormConnection> {
  const target = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = netConnect(Number(target.port), target.hostname)
    socket.setNoDelay(true)
    let pending:
      { resolve: (answer: ClientAnswer) => void; reject: (error: Error) => void } | undefined
    let buffered: Buffer = Buffer.alloc(0)
    const fail = (error: Error) => {
      pending?.reject(error)
      pending = undefined
    }
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
      const headEnd = buffered.indexOf('\r\n\r\n')
      if (headEnd < 0 || pending === undefined) return
      const head = buffered.subarray(0, headEnd).toString('latin1').split('\r\n')
      const status = Number(head[0]?.split(' ')[1])
      const headers = new Map(
        head.slice(1).map((line) => {
          const colon = line.indexOf(':')
          return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()] as const
        }),
      )
      const length = Number(headers.get('content-length'))
      if (!Number.isSafeInteger(length)) {
        fail(new Error(`storm answer ${String(status)} without a content-length`))
        return
      }
      if (buffered.length < headEnd + 4 + length) return
      buffered = buffered.subarray(headEnd + 4 + length)
      const done = pending
      pending = undefined
      done.resolve({
        status,
        replayed: headers.get('idempotent-replayed') === 'true',
        atNs: process.hrtime.bigint(),
      })
    })
    socket.on('error', fail)
    socket.on('close', () => {
      fail(new Error('the server closed a storm connection'))
    })
    socket.once('error', reject)
    socket.once('connect', () => {
      socket.off('error', reject)
      resolve({
        exchange: (request) =>
          new Promise((resolveAnswer, rejectAnswer) => {
            pending = { resolve: resolveAnswer, reject: rejectAnswer }
            socket.write(request)
          }),
        close: () => socket.destroy(),
      })
    })
  })
}

/** Opens `count` keep-alive connections to `url` (in batches: the listen backlog is finite). */
async function openConnections(url: string, count: number): Promise<StormConnection[]> {
  const connections: StormConnection[] = []
  for (let opened = 0; opened < count; opened += 200) {
    const batch = Math.min(200, count - opened)
    connections.push(...(await Promise.all(Array.from({ length: batch }, () => connect(url)))))
  }
  return connections
}

function stormRequest(url: string, key: string): Buffer {
  const { host } = new URL(url)
  return Buffer.from(
    `POST /orders HTTP/1.1\r\nhost: ${host}\r\ncontent-type: application/json\r\n` +
      `idempotency-key: ${key}\r\ncontent-length: ${String(Buffer.byteLength(ORDER_BODY))}\r\n\r\n` +
      ORDER_BODY,
  )
}

export async function runStorm(
  servers: readonly OrdersServer[],
  clients: number,
): Promise<StormResult> {
  const perServer = await Promise.all(
    servers.map((server) => openConnections(server.url, Math.ceil(clients / servers.length))),
  )
  try {
    // Clients spread evenly: the i-th goes to server i mod n.
    const storm = (key: string) => {
      const requests = servers.map((server) => stormRequest(server.url, key))
      return Promise.all(
        Array.from({ length: clients }, (_, index) => {
          const which = index % servers.length
          const connection = perServer[which]?.[Math.floor(index / servers.length)]
          if (connection === undefined) throw new Error('a storm connection is missing')
          return connection.exchange(requests[which] as Buffer)
        }),
      )
    }
    // A server that meets its first thousand requests runs them in the interpreter (about 0.8 ms
    // each, bare): the storms before the measured one, each on its own key, warm it up as any
    // server in service is.
    for (let round = 0; round < WARM_UP_STORMS; round++) await storm(randomUUID())
    const runsBefore = await runsOf(servers)
    const startNs = process.hrtime.bigint()
    const answers = await storm(randomUUID())
    const stats = await Promise.all(servers.map((server) => server.stats()))
    const executions = stats.reduce((total, s) => total + s.runs, 0) - runsBefore
    const sent = stats
      .flatMap((s, instance) => s.answers.map((a) => ({ ...a, instance })))
      .map((a) => ({ ...a, arrived: BigInt(a.arrivedNs), at: BigInt(a.atNs) }))
      .filter((a) => a.arrived >= startNs)
    const statuses: Record<string, number> = {}
    for (const answer of answers) {
      statuses[String(answer.status)] = (statuses[String(answer.status)] ?? 0) + 1
    }
    const ms = (ns: bigint) => Number(ns) / 1e6
    const spread = (values: number[]) => ({
      p50: quantile(values, 0.5),
      p99: quantile(values, 0.99),
      max: max(values),
    })
    const serverOriginal = sent.find((a) => !a.replayed && a.status === 201)
    const clientOriginal = answers.find((a) => !a.replayed && a.status === 201)
    // The anchor is the completion (the engine's `completed` event on the original's instance),
    // not the original's answer: the answer goes out in the same turn as the waiters' replays
    // and can come after most of them, which would hide what waking them costs.
    const completedAt = minOrUndefined(
      stats.flatMap((s) => s.completions.map(BigInt)).filter((at) => at >= startNs),
    )
    const replays = sent.filter((a) => a.replayed)
    const waiters = completedAt === undefined ? [] : replays.filter((a) => a.arrived < completedAt)
    const late = completedAt === undefined ? [] : replays.filter((a) => a.arrived >= completedAt)
    const arrivals = sent.map((a) => a.arrived)
    const afterCompletion = (a: { at: bigint }) => ms(a.at - (completedAt ?? 0n))
    return {
      executions,
      statuses,
      replayed: answers.filter((a) => a.replayed).length,
      arrivalSpreadMs: arrivals.length === 0 ? Number.NaN : ms(maxOf(arrivals) - minOf(arrivals)),
      waiters: waiters.length,
      server: spread(waiters.map(afterCompletion)),
      originalAnsweredMs:
        serverOriginal === undefined || completedAt === undefined
          ? Number.NaN
          : afterCompletion(serverOriginal),
      // The original's instance wakes its waiters itself; the others hear of the completion.
      waitersByInstance: servers.map((_, instance) => ({
        original: serverOriginal?.instance === instance,
        ...spread(waiters.filter((a) => a.instance === instance).map(afterCompletion)),
      })),
      late: late.length,
      lateAnswer: spread(late.map((a) => ms(a.at - a.arrived))),
      client:
        clientOriginal === undefined
          ? spread([])
          : spread(answers.filter((a) => a.replayed).map((a) => ms(a.atNs - clientOriginal.atNs))),
      originalAfterMs: serverOriginal === undefined ? Number.NaN : ms(serverOriginal.at - startNs),
    }
  } finally {
    for (const connection of perServer.flat()) connection.close()
  }
}

async function runsOf(servers: readonly OrdersServer[]): Promise<number> {
  const stats = await Promise.all(servers.map((server) => server.stats()))
  return stats.reduce((total, s) => total + s.runs, 0)
}

function minOf(values: readonly bigint[]): bigint {
  return values.reduce((least, value) => (value < least ? value : least))
}

function minOrUndefined(values: readonly bigint[]): bigint | undefined {
  return values.length === 0 ? undefined : minOf(values)
}

function maxOf(values: readonly bigint[]): bigint {
  return values.reduce((most, value) => (value > most ? value : most))
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
          `storm ${setup.title}, round ${String(round + 1)}: ${String(result.executions)} execution(s), arrivals over ${result.arrivalSpreadMs.toFixed(1)} ms, ${String(result.waiters)} waiters p99 ${result.server.p99.toFixed(1)} ms after the completion (server${result.waitersByInstance.length > 1 ? `; by instance ${result.waitersByInstance.map((i) => `${i.p50.toFixed(1)}/${i.p99.toFixed(1)}${i.original ? ' (original)' : ''}`).join(', ')}` : ''}), ${result.client.p99.toFixed(1)} ms (client), ${String(result.late)} late, the original answered ${result.originalAnsweredMs.toFixed(1)} ms after the completion`,
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
      { title: 'arrivals over ms', align: 'right' },
      { title: 'waiters', align: 'right' },
      { title: 'waiters after the completion, server p50 / p99 / max ms', align: 'right' },
      { title: "the original's answer after the completion ms", align: 'right' },
      { title: 'late arrivals, answered after arrival p99 ms', align: 'right' },
      { title: 'all replays after the original, client p50 / p99 / max ms', align: 'right' },
    ],
    rows.map(({ setup, results, error }) => {
      if (results.length === 0)
        return [setup.title, `failed: ${error ?? 'no result'}`, '', '', '', '', '', '', '', '']
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
        ms(pick((r) => r.arrivalSpreadMs)),
        formatNumber(pick((r) => r.waiters)),
        `${ms(pick((r) => r.server.p50))} / ${ms(pick((r) => r.server.p99))} / ${ms(pick((r) => r.server.max))}`,
        ms(pick((r) => r.originalAnsweredMs)),
        results.some((r) => r.late > 0)
          ? `${formatNumber(pick((r) => r.late))} late, ${ms(pick((r) => r.lateAnswer.p99))}`
          : 'none',
        `${ms(pick((r) => r.client.p50))} / ${ms(pick((r) => r.client.p99))} / ${ms(pick((r) => r.client.max))}`,
      ]
    }),
  )
  return {
    markdown: [
      '## Duplicate storms',
      '',
      `${formatNumber(STORM_CLIENTS)} clients, each on its own keep-alive connection opened beforehand, write one key and body at once (pre-built request bytes on raw sockets); the operation takes ${String(STORM_OPERATION_MS)} ms. Purpose-built Fastify app (the quick-start mount, a handler that sleeps and counts its runs), every instance pinned to CPU 0; across three instances the clients are spread evenly. ${String(WARM_UP_STORMS)} storms on other keys warm each server up first. "Executions" is per measured storm (must be 1); answers are per round (medians of ${String(context.settings.rounds)} rounds). "Arrivals over" is from the first request's arrival at a server to the last's. Waiters are the requests that arrived before the completion was stored (the engine's \`completed\` event on the original's instance); their latency is from the completion to their answer, as the servers sent them (onResponse, monotonic clock), and so is the original's own answer. Late arrivals (after the completion) are replays from the start; the last column is every replay after the original's answer as the load generator read it.`,
      '',
      table,
    ].join('\n'),
    json: rows.map(({ setup, results, error }) => ({ ...setup, results, error: error ?? null })),
  }
}
