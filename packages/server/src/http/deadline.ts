import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ApiError } from '../domain/api-error.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Aborts when the server's deadline for this request passes. */
    deadline: AbortSignal | null
  }
}

const kTimer = Symbol('deadline.timer')
const kController = Symbol('deadline.controller')
const kReply = Symbol('deadline.reply')
/** The deadline (or a shutdown) sent the request's answer. */
const kAnswered = Symbol('deadline.answered')
/** The request's transaction is committing: its outcome is its answer now. */
const kCommitting = Symbol('deadline.committing')

type WithDeadline = FastifyRequest & {
  [kTimer]?: NodeJS.Timeout
  [kController]?: AbortController
  [kReply]?: FastifyReply
  [kAnswered]?: boolean
  [kCommitting]?: boolean
}

/**
 * The server's deadline per request: past it, the answer is `408 request_timeout` and the
 * request's signal aborts, so that its transaction refuses to commit.
 *
 * Our own timer, not Fastify's `handlerTimeout`: that one is disarmed when the request body has
 * been read (it listens for the request's `close`), which is every POST with a body. And a
 * client that disconnects must not cancel its operation: its retry is owed the replay, so only
 * the deadline aborts the signal.
 */
export function registerDeadline(app: FastifyInstance, deadlineMs: number): void {
  app.decorateRequest('deadline', null)
  // A handler still running when the deadline answered must not answer too: its value (or the
  // abort error its transaction throws) would be a second send while the 408 is in its onSend
  // hooks, which Fastify renders as a 500 outside the envelope, or as the 408's status with the
  // handler's body. It settles into the deadline's answer instead.
  app.addHook('onRoute', (route) => {
    const handler = route.handler
    route.handler = function withinDeadline(this: FastifyInstance, request, reply) {
      const result: unknown = handler.call(this, request, reply)
      if (!isThenable(result)) return result
      // Settling into `reply` (a thenable) waits for the deadline's answer to finish, so that
      // Fastify, which sends a promise's value unless the reply is sent, sends nothing more.
      const answered = () => (request as WithDeadline)[kAnswered] === true
      return result.then(
        (payload) => (answered() ? reply : payload),
        (error: unknown) => {
          if (answered()) return reply
          throw error
        },
      )
    }
  })
  app.addHook('onRequest', async (request, reply) => {
    const controller = new AbortController()
    request.deadline = controller.signal
    ;(request as WithDeadline)[kController] = controller
    ;(request as WithDeadline)[kReply] = reply
    const timer = setTimeout(() => {
      answerNow(request, new ApiError('request_timeout', 'Request timed out'))
    }, deadlineMs)
    timer.unref()
    ;(request as WithDeadline)[kTimer] = timer
  })
  // Once an answer is being sent, the deadline cannot replace it: a 408 sent now would go out
  // with the status of one answer and the body of the other.
  app.addHook('onSend', (request, _reply, payload, done) => {
    clearTimeout((request as WithDeadline)[kTimer])
    done(null, payload)
  })
  app.addHook('onResponse', (request, _reply, done) => {
    clearTimeout((request as WithDeadline)[kTimer])
    done()
  })
}

/**
 * The request's transaction is about to commit: from here its outcome is its answer, and the
 * deadline can no longer answer 408 for it (on PostgreSQL the COMMIT is a round trip, during
 * which a 408 would go out for writes that then commit). Throws the deadline's error if it has
 * passed already: then the transaction must roll back.
 */
export function commitBeforeDeadline(request: FastifyRequest): void {
  ;(request as WithDeadline)[kController]?.signal.throwIfAborted()
  ;(request as WithDeadline)[kCommitting] = true
  clearTimeout((request as WithDeadline)[kTimer])
}

/**
 * Answers `error` now and aborts the request's signal, so that its transaction refuses to
 * commit: unless the request answered already, or its transaction is committing (its outcome
 * is its answer then: an error sent now could go out for writes that commit).
 */
function answerNow(request: FastifyRequest, error: ApiError): void {
  const state = request as WithDeadline
  const reply = state[kReply]
  if (reply === undefined || reply.sent || state[kCommitting] === true) return
  state[kAnswered] = true
  clearTimeout(state[kTimer])
  state[kController]?.abort(error)
  reply.send(error)
}

/**
 * The deadline, ahead of its time (a shutdown whose grace period has passed): `error` is the
 * answer now, and the transaction refuses to commit, as past the deadline. An operation that
 * would not reach its next check before the connection is cut used to get no answer at all.
 * False when the deadline hook did not see the request.
 */
export function abortDeadline(request: FastifyRequest, error: ApiError): boolean {
  if ((request as WithDeadline)[kController] === undefined) return false
  answerNow(request, error)
  return true
}

/** The request's deadline signal (never aborted for a request the hook did not see). */
export function deadlineSignal(request: FastifyRequest): AbortSignal {
  return request.deadline ?? new AbortController().signal
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  )
}
