import type { FastifyInstance, FastifyRequest } from 'fastify'
import { ApiError } from '../domain/api-error.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Aborts when the server's deadline for this request passes. */
    deadline: AbortSignal | null
  }
}

const kTimer = Symbol('deadline.timer')
const kController = Symbol('deadline.controller')

type WithDeadline = FastifyRequest & {
  [kTimer]?: NodeJS.Timeout
  [kController]?: AbortController
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
  app.addHook('onRequest', async (request, reply) => {
    const controller = new AbortController()
    request.deadline = controller.signal
    ;(request as WithDeadline)[kController] = controller
    const timer = setTimeout(() => {
      if (reply.sent) return
      const error = new ApiError('request_timeout', 'Request timed out')
      controller.abort(error)
      reply.send(error)
    }, deadlineMs)
    timer.unref()
    ;(request as WithDeadline)[kTimer] = timer
  })
  app.addHook('onResponse', (request, _reply, done) => {
    clearTimeout((request as WithDeadline)[kTimer])
    done()
  })
}

/**
 * Aborts the request's deadline signal ahead of its time (a shutdown whose grace period has
 * passed): its transaction then refuses to commit, as past the deadline. False when the
 * deadline hook did not see the request.
 */
export function abortDeadline(request: FastifyRequest, reason: unknown): boolean {
  const controller = (request as WithDeadline)[kController]
  if (controller === undefined) return false
  controller.abort(reason)
  return true
}

/** The request's deadline signal (never aborted for a request the hook did not see). */
export function deadlineSignal(request: FastifyRequest): AbortSignal {
  return request.deadline ?? new AbortController().signal
}
