/**
 * Throughput scenarios measured in interleaved rounds: every round runs every scenario once, on
 * a freshly started server, so that a slow minute of the machine hits all of them alike; the
 * tables show medians over rounds.
 */
import type { AutocannonRequest } from 'autocannon'
import { cpuMicros } from './cpu.js'
import { runLoad } from './load.js'
import { median } from './stats.js'

export interface MeasuredServer {
  readonly url: string
  readonly pid: number | undefined
  /** Ends the server (a clean exit where a profile must be written). */
  stop(): Promise<void>
}

export interface Scenario {
  readonly id: string
  /** Starts a server for this scenario and says how to build each request. */
  setUp(): Promise<{ server: MeasuredServer; next: () => AutocannonRequest }>
}

export interface LoadSettings {
  readonly rounds: number
  readonly seconds: number
  readonly warmupSeconds: number
  readonly connections: number
}

export interface RoundResult {
  readonly rps: number
  readonly p50: number
  readonly p99: number
  /** Server CPU per answered request, in microseconds; NaN where unreadable. */
  readonly cpuPerRequest: number
  readonly requests: number
  readonly statuses: Readonly<Record<string, number>>
  readonly errors: number
  /** The measured window on the machine's monotonic clock (process.hrtime), in µs. */
  readonly window: { readonly fromMicros: number; readonly toMicros: number }
}

export interface Summary {
  readonly rps: number
  readonly p50: number
  readonly p99: number
  readonly cpuPerRequest: number
  /** Summed over rounds. */
  readonly requests: number
  readonly statuses: Readonly<Record<string, number>>
  readonly errors: number
  readonly rounds: readonly RoundResult[]
}

/** One scenario once: start, warm up, measure, stop. */
export async function measureOnce(
  scenario: Scenario,
  settings: Pick<LoadSettings, 'seconds' | 'warmupSeconds' | 'connections'>,
): Promise<RoundResult> {
  const { server, next } = await scenario.setUp()
  try {
    if (settings.warmupSeconds > 0) {
      await runLoad({
        url: server.url,
        connections: settings.connections,
        seconds: settings.warmupSeconds,
        next,
      })
    }
    const cpuBefore = cpuMicros(server.pid)
    const fromMicros = Number(process.hrtime.bigint() / 1000n)
    const result = await runLoad({
      url: server.url,
      connections: settings.connections,
      seconds: settings.seconds,
      next,
    })
    const toMicros = Number(process.hrtime.bigint() / 1000n)
    const cpuAfter = cpuMicros(server.pid)
    const cpu =
      cpuBefore === undefined || cpuAfter === undefined ? Number.NaN : cpuAfter - cpuBefore
    return {
      rps: result.rps,
      p50: result.p50,
      p99: result.p99,
      cpuPerRequest: cpu / Math.max(1, result.requests),
      requests: result.requests,
      statuses: result.statuses,
      errors: result.errors,
      window: { fromMicros, toMicros },
    }
  } finally {
    await server.stop()
  }
}

/**
 * Every scenario once per round; the start rotates from round to round, so that no scenario
 * always runs first (on a cold machine) or last.
 */
export async function measureRounds(
  scenarios: readonly Scenario[],
  settings: LoadSettings,
  log: (line: string) => void,
  /** Scenarios that threw, with the error: they are left out of later rounds, not fatal. */
  failed: Map<string, string> = new Map(),
): Promise<Map<string, Summary>> {
  const results = new Map<string, RoundResult[]>(scenarios.map((s) => [s.id, []]))
  for (let round = 0; round < settings.rounds; round++) {
    for (let index = 0; index < scenarios.length; index++) {
      const scenario = scenarios[(index + round) % scenarios.length] as Scenario
      if (failed.has(scenario.id)) continue
      let result: RoundResult
      try {
        result = await measureOnce(scenario, settings)
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error)
        failed.set(scenario.id, message.split('\n')[0] ?? message)
        results.delete(scenario.id)
        log(`${scenario.id} failed: ${message}`)
        continue
      }
      results.get(scenario.id)?.push(result)
      log(
        `round ${String(round + 1)}/${String(settings.rounds)} ${scenario.id}: ${Math.round(result.rps).toLocaleString('en-US')} req/s, ${result.cpuPerRequest.toFixed(1)} µs CPU/req`,
      )
    }
  }
  return new Map([...results].map(([id, rounds]) => [id, summarise(rounds)]))
}

export function summarise(rounds: readonly RoundResult[]): Summary {
  const statuses: Record<string, number> = {}
  for (const round of rounds) {
    for (const [code, count] of Object.entries(round.statuses)) {
      statuses[code] = (statuses[code] ?? 0) + count
    }
  }
  return {
    rps: median(rounds.map((r) => r.rps)),
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    cpuPerRequest: median(rounds.map((r) => r.cpuPerRequest)),
    requests: rounds.reduce((total, r) => total + r.requests, 0),
    statuses,
    errors: rounds.reduce((total, r) => total + r.errors, 0),
    rounds,
  }
}
