import type { FastifyRequest } from 'fastify'

/**
 * A signal that aborts only when the server's deadline passes. Fastify's `request.signal` also
 * aborts when the client disconnects, but a client that goes away must not stop its operation
 * from committing: its retry is owed the replay.
 */
export function deadlineSignal(request: FastifyRequest): AbortSignal {
  const controller = new AbortController()
  const source = request.signal
  const onAbort = () => {
    const reason = source.reason as { code?: unknown } | undefined
    if (reason?.code === 'FST_ERR_HANDLER_TIMEOUT') controller.abort(source.reason)
  }
  if (source.aborted) onAbort()
  else source.addEventListener('abort', onAbort, { once: true })
  return controller.signal
}
