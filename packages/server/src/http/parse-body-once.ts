import type { FastifyReply, FastifyRequest } from 'fastify'

/** A body parser that runs once per request, in `preValidation`, and keeps what it parsed. */
export interface ParsedBody<T> {
  /**
   * The route's `preValidation` hook: parses the body before the idempotency key is claimed,
   * so that a client that fixes a rejected body may retry with the same key, and answers what
   * the parser throws (an `ApiError` 400).
   */
  readonly preValidation: (
    request: FastifyRequest,
    reply: FastifyReply,
    done: (error?: Error) => void,
  ) => void
  /** The value `preValidation` parsed from this request's body. */
  of(request: FastifyRequest): T
}

/** Parses each request body once with `parse`, for the handler to read back with `of`. */
export function parseBodyOnce<T>(parse: (body: unknown) => T): ParsedBody<T> {
  // Keyed by the request object, which Fastify keeps from the first hook to the handler; a
  // WeakMap lets a finished request's value go with it.
  const parsed = new WeakMap<FastifyRequest, { readonly value: T }>()
  return {
    preValidation(request, _reply, done) {
      let value: T
      try {
        value = parse(request.body)
      } catch (error) {
        done(error as Error)
        return
      }
      parsed.set(request, { value })
      done()
    },
    of(request) {
      const entry = parsed.get(request)
      if (entry === undefined) throw new Error('a body was read before preValidation parsed it')
      return entry.value
    },
  }
}
