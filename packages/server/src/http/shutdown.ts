import type { Server } from 'node:http'
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify'
import { ApiError } from '../domain/api-error.js'
import { abortDeadline } from './deadline.js'
import { JSON_TYPE, renderError } from './envelope.js'

/**
 * How long operations aborted at the end of the grace period get to roll back and answer
 * (their transactions refuse to commit at their next check) before their connections are cut.
 */
const ABORT_SETTLE_MS = 1_000

export interface DrainResult {
  /** Requests still in flight when the grace period ended, whose operations were aborted. */
  readonly aborted: number
  /** Of those, the ones that had not answered when their connections were cut. */
  readonly cut: number
}

/**
 * A server's way out: once draining, new requests are answered `503 unavailable` (with
 * `Connection: close`), the requests in flight finish within the grace period, and the
 * operations of those that do not are aborted (their transactions roll back, their keys are
 * released) so that nothing is left half done.
 */
export interface ShutdownCoordinator {
  readonly draining: boolean
  /** Requests whose routes run and have not answered yet. */
  readonly inFlight: number
  /**
   * Refuses new requests while draining, and closes the connection of every answer written
   * while draining. Register it among the first `onRequest` hooks, before authentication and
   * the rate limit, which a refused request must not touch.
   */
  registerRefusal(app: FastifyInstance): void
  /**
   * Follows each routed request from its route's first hook to the end of its last `onSend`,
   * after the idempotency plugin's (which stores the response), and makes its deadline signal
   * (`request.deadline`, which the operation's transaction obeys) abortable at shutdown.
   * Register it after the idempotency plugin and after the deadline hook.
   */
  registerTracking(app: FastifyInstance): void
  /** Starts draining: from now on new requests are refused. */
  beginDraining(): void
  /**
   * Resolves once no request is in flight, or once the grace period has passed and the
   * operations still running were aborted and given {@link ABORT_SETTLE_MS} to answer.
   */
  drain(graceMs: number): Promise<DrainResult>
}

const kTracked = Symbol('shutdown.tracked')
type Tracked = FastifyRequest & { [kTracked]?: true }

export function createShutdownCoordinator(): ShutdownCoordinator {
  let draining = false
  const inFlight = new Set<FastifyRequest>()
  let onIdle: (() => void) | undefined

  const settle = (request: FastifyRequest) => {
    if ((request as Tracked)[kTracked] !== true || !inFlight.delete(request)) return
    if (inFlight.size === 0) onIdle?.()
  }

  /** Resolves true when nothing is in flight any more, false after `ms`. */
  const idleWithin = (ms: number): Promise<boolean> => {
    if (inFlight.size === 0) return Promise.resolve(true)
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        onIdle = undefined
        resolve(false)
      }, ms)
      onIdle = () => {
        clearTimeout(timer)
        onIdle = undefined
        resolve(true)
      }
    })
  }

  return {
    get draining() {
      return draining
    },
    get inFlight() {
      return inFlight.size
    },
    registerRefusal(app) {
      // An answer written while draining ends its connection, so that keep-alive clients
      // reconnect (elsewhere) and the server's close is not held up by idle sockets.
      app.addHook('onSend', (_request, reply, payload, done) => {
        if (draining) reply.header('connection', 'close')
        done(null, payload)
      })
      app.addHook('onRequest', (_request, reply, done) => {
        if (!draining) {
          done()
          return
        }
        void reply
          .code(503)
          .header('connection', 'close')
          .header('retry-after', '1')
          .type(JSON_TYPE)
          .send(renderError('unavailable', 'The server is shutting down. Please retry.'))
      })
    },
    registerTracking(app) {
      app.addHook('onRoute', (route: RouteOptions) => {
        // Nothing per request but a set entry and a listener: at shutdown the request's own
        // deadline signal is aborted (deadline.ts), which its transaction already obeys.
        const track = (request: FastifyRequest, reply: { raw: NodeJS.EventEmitter }) => {
          ;(request as Tracked)[kTracked] = true
          inFlight.add(request)
          // The answer was written: whatever its hooks did is done. (A client that left is
          // followed to the end of onSend instead, below.)
          reply.raw.once('finish', () => {
            settle(request)
          })
        }
        route.onRequest = [
          ...[route.onRequest ?? []].flat(),
          (request, reply, done) => {
            track(request, reply)
            done()
          },
        ]
        route.onSend = [
          ...[route.onSend ?? []].flat(),
          (request, _reply, payload, done) => {
            settle(request)
            done(null, payload)
          },
        ]
      })
    },
    beginDraining() {
      draining = true
    },
    async drain(graceMs) {
      draining = true
      if (await idleWithin(graceMs)) return { aborted: 0, cut: 0 }
      const aborted = inFlight.size
      const reason = new ApiError('unavailable', 'The server is shutting down. Please retry.')
      for (const request of inFlight) abortDeadline(request, reason)
      await idleWithin(ABORT_SETTLE_MS)
      return { aborted, cut: inFlight.size }
    },
  }
}

/** How often connections that went idle during a shutdown are looked for and closed. */
const IDLE_SWEEP_MS = 50

/**
 * Resolves once `closed` (the HTTP server's close) has, closing connections as they go idle
 * and cutting whatever is still open after `ms`. Node's `close()` closes the connections idle
 * at that moment only: a keep-alive connection whose answer was still being written goes idle
 * later and would hold the close open for as long as its client keeps it.
 */
export async function closeConnections(
  server: Pick<Server, 'closeIdleConnections' | 'closeAllConnections'>,
  closed: Promise<unknown>,
  ms: number,
): Promise<void> {
  let done = false
  const finished = closed.then(() => {
    done = true
  })
  const sweep = setInterval(() => {
    server.closeIdleConnections()
  }, IDLE_SWEEP_MS)
  const cut = setTimeout(() => {
    if (!done) server.closeAllConnections()
  }, ms)
  server.closeIdleConnections()
  try {
    await finished
  } finally {
    clearInterval(sweep)
    clearTimeout(cut)
  }
}
