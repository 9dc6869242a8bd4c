/** One load run with autocannon (this process, on the core the servers do not use). */
import autocannon from 'autocannon'
import type { AutocannonRequest } from 'autocannon'

export interface LoadPlan {
  readonly url: string
  readonly connections: number
  readonly seconds: number
  /** Builds every request (a fresh key, a fresh pair, ...). */
  readonly next: () => AutocannonRequest
}

export interface LoadResult {
  readonly requests: number
  readonly rps: number
  /** Milliseconds. */
  readonly p50: number
  readonly p99: number
  readonly statuses: Readonly<Record<string, number>>
  /** Connection errors and timeouts. */
  readonly errors: number
}

export async function runLoad(plan: LoadPlan): Promise<LoadResult> {
  const result = await autocannon({
    url: plan.url,
    connections: plan.connections,
    duration: plan.seconds,
    timeout: 30,
    // Spread over autocannon's own request: it carries the host and port the Host header is
    // built from.
    requests: [{ setupRequest: (request) => ({ ...request, ...plan.next() }) }],
  })
  const statuses: Record<string, number> = {}
  for (const [code, { count }] of Object.entries(result.statusCodeStats)) statuses[code] = count
  const requests = Object.values(statuses).reduce((total, count) => total + count, 0)
  return {
    requests,
    rps: requests / Math.max(0.001, result.duration),
    p50: result.latency.p50,
    p99: result.latency.p99,
    statuses,
    errors: result.errors + result.timeouts,
  }
}

/** How many answers had a status outside 2xx. */
export function non2xx(statuses: Readonly<Record<string, number>>): number {
  return Object.entries(statuses)
    .filter(([code]) => !code.startsWith('2'))
    .reduce((total, [, count]) => total + count, 0)
}
