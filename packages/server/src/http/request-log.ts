import { AsyncLocalStorage } from 'node:async_hooks'
import { createHash } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import type { IdempotencyEvent } from '@ticksupply/idempotency'
import { redactUrl } from './log-redaction.js'
import { routeLabel } from './metrics.js'

/** What the idempotency layer did with a keyed request, as its log line says it. */
export type KeyedOutcome =
  /** The key was free: the operation ran. */
  | 'claimed'
  /** The key was held by a holder that died: taken over, the operation ran. */
  | 'took_over'
  | 'replayed'
  /** 409: the key was used for another request (`mismatch`), or its original still runs. */
  | 'conflict'
  /** 503: the store could not be read or written; nothing ran. */
  | 'unavailable'
  /** Answered before the claim (401, 429, a bad body): the key was not touched. */
  | 'not_claimed'

interface RequestState {
  outcome?: KeyedOutcome
  conflict?: 'mismatch' | 'in_progress'
  /** Set when the request waited for its original. */
  waitedMs?: number
  logged?: boolean
}

const kState = Symbol('request-log.state')

type WithState = FastifyRequest & { [kState]?: RequestState }

/**
 * The first 16 hex digits of SHA-256 over the account and the canonical key: the same key of
 * the same account gives the same hash in every line (so an operator can follow a client's
 * retries), and the log never holds a key that could be replayed or tried.
 */
export function keyHash(scope: string, key: string): string {
  return createHash('sha256').update(`${scope}\n${key}`).digest('hex').slice(0, 16)
}

export interface RequestLog {
  /** Engine events: the ones a request causes are attributed to it. */
  record(event: IdempotencyEvent): void
}

/**
 * One structured line per request, at `info`: request id (pino's `reqId`), method, declared
 * route, redacted URL, status, duration, account id and, for a keyed request, the key's hash,
 * what the idempotency layer did (`claimed`, `took_over`, `replayed`, `conflict`, `unavailable`,
 * `not_claimed`) and how long it waited for an original. Fastify's own two lines per request
 * are off (`disableRequestLogging`).
 *
 * The engine reports events without saying whose they are: an `AsyncLocalStorage` carries the
 * request's state from its first hook to the engine's callbacks. Body parsing runs on stream
 * events outside that context, so `preValidation` enters it again. Without a logger nothing of
 * this runs.
 *
 * Register the hooks first among the app's `onRequest` hooks, and call
 * {@link registerRequestLogRoutes} after the idempotency plugin.
 */
export function registerRequestLog(app: FastifyInstance): RequestLog {
  const context = new AsyncLocalStorage<RequestState>()
  app.addHook('onRequest', (request, _reply, done) => {
    const state: RequestState = {}
    ;(request as WithState)[kState] = state
    context.run(state, done)
  })
  app.addHook('preValidation', (request, _reply, done) => {
    const state = (request as WithState)[kState]
    if (state === undefined) done()
    else context.run(state, done)
  })
  app.addHook('onResponse', (request, reply, done) => {
    writeLine(request, reply, false)
    done()
  })
  return {
    record(event) {
      const state = context.getStore()
      if (state === undefined) return
      switch (event.type) {
        case 'claimed':
          state.outcome = event.takeover ? 'took_over' : 'claimed'
          return
        case 'replayed':
          state.outcome = 'replayed'
          return
        case 'mismatch':
        case 'in_progress':
          state.outcome = 'conflict'
          state.conflict = event.type
          return
        case 'waited':
          state.waitedMs = Math.round(event.waitedMs)
          return
        case 'store_error':
          state.outcome ??= 'unavailable'
          return
        case 'woken':
        case 'completed':
        case 'released':
        case 'lease_lost':
          return
      }
    },
  }
}

/**
 * A request whose client left before the answer was written never reaches `onResponse`: its
 * line is written at the end of `onSend` instead (after the idempotency plugin's own, so the
 * outcome is known), marked `aborted`.
 */
export function registerRequestLogRoutes(app: FastifyInstance): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    const onSend = route.onSend === undefined ? [] : [route.onSend].flat()
    route.onSend = [
      ...onSend,
      (request, reply, payload, done) => {
        if (reply.raw.destroyed) writeLine(request, reply, true)
        done(null, payload)
      },
    ]
  })
}

function writeLine(request: FastifyRequest, reply: FastifyReply, aborted: boolean): void {
  const state = (request as WithState)[kState]
  if (state?.logged === true) return
  if (state !== undefined) state.logged = true
  const line: Record<string, unknown> = {
    method: request.method,
    route: routeLabel(request),
    url: redactUrl(request.url),
    status: reply.statusCode,
    durationMs: Math.round(reply.elapsedTime * 10) / 10,
  }
  if (request.account !== null) line['accountId'] = request.account.id
  if (aborted) line['aborted'] = true
  const key = request.idempotencyKey
  if (key !== null && request.account !== null) {
    line['idempotency'] = {
      keyHash: keyHash(request.account.id, key),
      outcome: state?.outcome ?? fallbackOutcome(request, reply),
      ...(state?.conflict === undefined ? {} : { conflict: state.conflict }),
      ...(state?.waitedMs === undefined ? {} : { waitedMs: state.waitedMs }),
    }
  }
  request.log.info(line, 'request completed')
}

/** What the request's own state says, where no engine event reached it. */
function fallbackOutcome(request: FastifyRequest, reply: FastifyReply): KeyedOutcome {
  if (request.idempotencyClaim !== null) return 'claimed'
  if (reply.getHeader('idempotent-replayed') === 'true') return 'replayed'
  return 'not_claimed'
}
