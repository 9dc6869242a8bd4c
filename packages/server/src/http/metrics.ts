import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { IdempotencyEvent } from '@ticksupply/idempotency'

/**
 * What the metrics read from the idempotency layer besides its events: the engine's background
 * retries, and the store's own counts where it has them (SQLite and PostgreSQL keep claims in
 * progress and a cache of completed records; PostgreSQL also knows whether it is listening).
 */
export interface IdempotencySources {
  readonly engine: { readonly pendingRetries: number }
  readonly store: object
}

/**
 * The server's metrics, in a registry of its own (several apps may share a process in tests),
 * served at `/metrics` in the Prometheus text format.
 */
export interface ServerMetrics {
  readonly registry: Registry
  /**
   * The idempotency counters as `/metrics` shows them, readable at once (tests and tools): by
   * series name without the `ticksupply_idempotency_` prefix and the `_total` suffix, with its
   * labels as Prometheus writes them, e.g. `claims` or `conflicts{reason="mismatch"}`.
   */
  readonly counts: Readonly<Record<string, number>>
  /** An engine event. */
  record(event: IdempotencyEvent): void
  /** A purge run that deleted `deleted` expired records. */
  recordPurgeRun(deleted: number): void
  /** A purge run that failed. */
  recordPurgeFailure(): void
}

const PREFIX = 'ticksupply_idempotency_'

/** Methods as a label: anything else a client sends counts as `other`. */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])

/** A route label for requests that matched no route (404s, bad paths): one value, not the path. */
const UNMATCHED = 'unmatched'

/** Seconds; an API call takes milliseconds, the deadline is 10 s. */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/** Seconds; a duplicate waits about 3 s at most by default. */
const WAIT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10]

interface CacheStats {
  readonly entries: number
  readonly bytes: number
  readonly hits: number
  readonly misses: number
}

interface KeyFilterStats {
  readonly ready: boolean
  readonly keys: number
}

/** The store's optional counters, read without knowing which store it is. */
function storeReadings(store: object): {
  inProgress?: () => number
  cache?: () => CacheStats
  keyFilter?: () => KeyFilterStats
  listening?: () => boolean
} {
  const view = store as {
    inProgress?: unknown
    cache?: unknown
    keyFilter?: unknown
    listening?: unknown
  }
  const readings: ReturnType<typeof storeReadings> = {}
  if (typeof view.inProgress === 'number') readings.inProgress = () => view.inProgress as number
  if (typeof view.cache === 'function') {
    const cache = view.cache as () => CacheStats
    readings.cache = () => cache.call(store)
  }
  if (typeof view.keyFilter === 'function') {
    const keyFilter = view.keyFilter as () => KeyFilterStats
    readings.keyFilter = () => keyFilter.call(store)
  }
  if (typeof view.listening === 'boolean') readings.listening = () => view.listening === true
  return readings
}

export function createServerMetrics(sources: IdempotencySources): ServerMetrics {
  const registry = new Registry()
  const registers = [registry]
  collectDefaultMetrics({ register: registry })
  const counts: Record<string, number> = {}

  /** A counter whose every increment is mirrored in `counts`. */
  function counter<Label extends string>(name: string, help: string, labelNames: Label[] = []) {
    const metric = new Counter({ name: `${PREFIX}${name}_total`, help, labelNames, registers })
    return (labels?: Record<Label, string>, by = 1) => {
      const series =
        labels === undefined
          ? name
          : `${name}{${Object.entries(labels)
              .map(([label, value]) => `${label}="${String(value)}"`)
              .join(',')}}`
      counts[series] = (counts[series] ?? 0) + by
      if (labels === undefined) metric.inc(by)
      else metric.inc(labels, by)
    }
  }

  const claims = counter('claims', 'Keys claimed by a first request: the operation ran.')
  const takeovers = counter(
    'claims_takeover',
    'Keys taken over from a holder that died: the operation ran again.',
  )
  const replayed = counter('replayed', 'Stored responses replayed.')
  const conflicts = counter(
    'conflicts',
    'Keyed requests answered 409: the key was used for another request (mismatch), or its original still runs (in_progress).',
    ['reason'],
  )
  const waits = counter(
    'waits',
    'Duplicates that waited for their original, by how the wait ended.',
    ['outcome'],
  )
  const waitSeconds = new Histogram({
    name: `${PREFIX}wait_seconds`,
    help: 'How long duplicates waited for their original, by how the wait ended.',
    labelNames: ['outcome'],
    buckets: WAIT_BUCKETS,
    registers,
  })
  const wakes = counter('wakes', "Waiting duplicates woken by the store's completion signal.")
  const completed = counter('completed', 'Responses stored for replay.')
  const released = counter('released', 'Claims given back without a stored response (5xx, 408).')
  const leaseLost = counter(
    'lease_lost',
    'Claims lost while held: taken over, or the store could no longer vouch for them.',
  )
  const storeErrors = counter(
    'store_errors',
    'Failed reads and writes of the idempotency store (keyed requests answered 503).',
  )
  const purgeRuns = counter('purge_runs', 'Runs of the purger of expired records.', ['result'])
  const purged = counter('purged_records', 'Expired records deleted by the purger.')

  const store = storeReadings(sources.store)
  new Gauge({
    name: `${PREFIX}pending_retries`,
    help: 'Releases the store refused, being retried in the background.',
    registers,
    collect() {
      this.set(sources.engine.pendingRetries)
    },
  })
  const { inProgress, cache, keyFilter, listening } = store
  if (inProgress !== undefined) {
    new Gauge({
      name: `${PREFIX}in_progress`,
      help: 'Keys claimed by this process whose operation still runs.',
      registers,
      collect() {
        this.set(inProgress())
      },
    })
  }
  if (cache !== undefined) {
    new Gauge({
      name: `${PREFIX}cache_bytes`,
      help: 'Bytes held by the cache of completed records.',
      registers,
      collect() {
        this.set(cache().bytes)
      },
    })
    new Gauge({
      name: `${PREFIX}cache_entries`,
      help: 'Completed records held by the cache.',
      registers,
      collect() {
        this.set(cache().entries)
      },
    })
    new Gauge({
      name: `${PREFIX}cache_hit_ratio`,
      help: 'Share of cache lookups that found the record, since the process started (0 before any lookup).',
      registers,
      collect() {
        const { hits, misses } = cache()
        this.set(hits + misses === 0 ? 0 : hits / (hits + misses))
      },
    })
    for (const [name, read] of [
      ['cache_hits', (stats: CacheStats) => stats.hits],
      ['cache_misses', (stats: CacheStats) => stats.misses],
    ] as const) {
      new Counter({
        name: `${PREFIX}${name}_total`,
        help: `Cache lookups that ${name === 'cache_hits' ? 'found' : 'did not find'} a completed record.`,
        registers,
        collect() {
          // The store keeps the running total: show it as it is.
          this.reset()
          this.inc(read(cache()))
        },
      })
    }
  }
  if (keyFilter !== undefined) {
    new Gauge({
      name: `${PREFIX}key_filter_ready`,
      help: "1 once the SQLite store has read every record's key in (new keys then skip their look-up), else 0.",
      registers,
      collect() {
        this.set(keyFilter().ready ? 1 : 0)
      },
    })
    new Gauge({
      name: `${PREFIX}key_filter_keys`,
      help: "Keys in the SQLite store's filter of the keys its file holds.",
      registers,
      collect() {
        this.set(keyFilter().keys)
      },
    })
  }
  if (listening !== undefined) {
    new Gauge({
      name: `${PREFIX}store_listening`,
      help: "1 while the store's instance connection is up (claims granted, waiters woken across instances), else 0.",
      registers,
      collect() {
        this.set(listening() ? 1 : 0)
      },
    })
  }

  return {
    registry,
    counts,
    record(event) {
      switch (event.type) {
        case 'claimed':
          if (event.takeover) takeovers()
          else claims()
          return
        case 'replayed':
          replayed()
          return
        case 'mismatch':
          conflicts({ reason: 'mismatch' })
          return
        case 'in_progress':
          conflicts({ reason: 'in_progress' })
          return
        case 'waited':
          waits({ outcome: event.outcome })
          waitSeconds.observe({ outcome: event.outcome }, event.waitedMs / 1000)
          return
        case 'woken':
          wakes()
          return
        case 'completed':
          completed()
          return
        case 'released':
          released()
          return
        case 'lease_lost':
          leaseLost()
          return
        case 'store_error':
          storeErrors()
          return
      }
    },
    recordPurgeRun(deleted) {
      purgeRuns({ result: 'ok' })
      if (deleted > 0) purged(undefined, deleted)
    },
    recordPurgeFailure() {
      purgeRuns({ result: 'error' })
    },
  }
}

/** The route a request matched, as declared (`/v1/subscriptions/:id`), never the raw path. */
export function routeLabel(request: FastifyRequest): string {
  return request.routeOptions.url ?? UNMATCHED
}

export function methodLabel(method: string): string {
  return METHODS.has(method) ? method : 'other'
}

/**
 * Requests by route and status, their durations, and the `/metrics` route itself. Counted when
 * the answer has been written (`onResponse`); an answer to a client that left before it was
 * written is not counted.
 */
export function registerMetrics(app: FastifyInstance, metrics: ServerMetrics): void {
  const registers = [metrics.registry]
  const requests = new Counter({
    name: 'ticksupply_http_requests_total',
    help: 'Answered requests by method, declared route and status.',
    labelNames: ['method', 'route', 'status'],
    registers,
  })
  const durations = new Histogram({
    name: 'ticksupply_http_request_duration_seconds',
    help: 'Time from the request to its answer, by method, declared route and status class.',
    labelNames: ['method', 'route', 'status_class'],
    buckets: REQUEST_BUCKETS,
    registers,
  })
  app.addHook('onResponse', (request, reply, done) => {
    const method = methodLabel(request.method)
    const route = routeLabel(request)
    const status = reply.statusCode
    requests.inc({ method, route, status: String(status) })
    durations.observe(
      { method, route, status_class: `${String(Math.floor(status / 100))}xx` },
      reply.elapsedTime / 1000,
    )
    done()
  })

  const schema = {
    operationId: 'getMetrics',
    summary: 'Server metrics (Prometheus text format)',
    description:
      'Requests by route and status, request durations, the idempotency layer (claims, takeovers, replays, conflicts, waits, store errors, records in progress, purges, the cache of completed records) and the process. No account data, no keys; no API key needed.',
    tags: ['Operations'],
    security: [],
    response: {
      200: {
        description: 'The Prometheus text exposition format 0.0.4, with `# HELP` and `# TYPE`.',
        content: { 'text/plain': { schema: { type: 'string' } } },
      },
    },
  }
  app.get('/metrics', { schema }, async (_request, reply) => {
    const text = await metrics.registry.metrics()
    return reply.type(metrics.registry.contentType).send(text)
  })
}
