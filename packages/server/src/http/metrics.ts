import type { FastifyInstance } from 'fastify'
import type { IdempotencyEvent } from '@ticksupply/idempotency'

/** Counters of what the idempotency layer did, served in Prometheus text format at `/metrics`. */
export interface IdempotencyMetrics {
  readonly counts: Readonly<Record<string, number>>
  record(event: IdempotencyEvent): void
}

export function createIdempotencyMetrics(): IdempotencyMetrics {
  const counts: Record<string, number> = {}
  const bump = (name: string) => {
    counts[name] = (counts[name] ?? 0) + 1
  }
  return {
    counts,
    record(event) {
      switch (event.type) {
        case 'claimed':
          bump(event.takeover ? 'claims_takeover' : 'claims')
          return
        case 'waited':
          bump(`waits_${event.outcome}`)
          return
        case 'woken':
          bump('wakes')
          return
        case 'replayed':
        case 'mismatch':
        case 'completed':
        case 'released':
        case 'lease_lost':
        case 'store_error':
        case 'in_progress':
          bump(event.type)
          return
      }
    },
  }
}

export function registerMetricsRoute(app: FastifyInstance, metrics: IdempotencyMetrics): void {
  const schema = {
    operationId: 'getMetrics',
    summary: 'Idempotency counters (Prometheus text format)',
    description: 'Counters only, no account data; no API key needed.',
    tags: ['Operations'],
    security: [],
    response: {
      200: {
        description: 'One `ticksupply_idempotency_<name>_total <count>` line per counter.',
        content: { 'text/plain': { schema: { type: 'string' } } },
      },
    },
  }
  app.get('/metrics', { schema }, async (_request, reply) => {
    const lines = Object.entries(metrics.counts).map(
      ([name, value]) => `ticksupply_idempotency_${name}_total ${String(value)}`,
    )
    return reply.type('text/plain; version=0.0.4').send(`${lines.join('\n')}\n`)
  })
}
