import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import {
  isIdempotencyError,
  isIdempotencyHttpError,
  toIdempotencyErrorResponse,
} from '@ticksupply/idempotency'
import { isDatabaseUnavailable } from '../db/database-errors.js'
import { isApiError } from '../domain/api-error.js'
import { JSON_TYPE, renderError } from './envelope.js'
import { ALWAYS_HEADERS } from './response-headers.js'

interface Rendered {
  status: number
  code: string
  message: string
  details?: Readonly<Record<string, unknown>> | undefined
  headers?: Readonly<Record<string, string>>
}

function classify(error: unknown): Rendered {
  if (isApiError(error))
    return {
      status: error.status,
      code: error.code,
      message: error.message,
      details: error.details,
    }
  // The adapter hands its errors on with their status; the table is the same either way.
  if (isIdempotencyHttpError(error)) return toIdempotencyErrorResponse(error.cause)
  if (isIdempotencyError(error)) return toIdempotencyErrorResponse(error)
  const fastifyError = error as Partial<FastifyError> & { validation?: unknown }
  const code = typeof fastifyError.code === 'string' ? fastifyError.code : ''
  if (fastifyError.validation !== undefined) {
    return {
      status: 400,
      code: 'invalid_argument',
      message: fastifyError.message ?? 'Invalid request',
    }
  }
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return {
      status: 400,
      code: 'invalid_argument',
      message: 'Content-Type must be application/json',
    }
  }
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return { status: 400, code: 'invalid_argument', message: 'Request body is too large' }
  }
  if (isDatabaseUnavailable(error)) {
    return {
      status: 503,
      code: 'unavailable',
      message: 'The database is unavailable. Please retry later.',
      headers: { 'retry-after': '1' },
    }
  }
  const status = fastifyError.statusCode
  // A plugin's own refusals keep their meaning (the documentation's file server refuses a path
  // that climbs out of its folder with a 403): the table's code for each, not a 400.
  if (status === 403) {
    return { status, code: 'permission_denied', message: fastifyError.message ?? 'Forbidden' }
  }
  if (status === 404) {
    return { status, code: 'not_found', message: fastifyError.message ?? 'Not found' }
  }
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return {
      status: 400,
      code: 'invalid_argument',
      message: fastifyError.message ?? 'Invalid request',
    }
  }
  return { status: 500, code: 'internal', message: 'Internal server error' }
}

/** Answers `error` in the envelope, with its status and headers; a 5xx is logged. */
function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const rendered = classify(error)
  if (rendered.status >= 500) request.log.error({ err: error }, 'request failed')
  reply
    .code(rendered.status)
    .headers(rendered.headers ?? {})
    .type(JSON_TYPE)
  reply.removeHeader('location')
  return reply.send(renderError(rendered.code, rendered.message, rendered.details))
}

/** Every error, Fastify's own included, leaves as the envelope. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler(sendError)
  app.setNotFoundHandler((request, reply) => {
    return reply
      .code(404)
      .type(JSON_TYPE)
      .send(
        renderError(
          'not_found',
          `Route ${request.method} ${request.url.split('?')[0] ?? ''} not found`,
        ),
      )
  })
}

/**
 * A check a request passes before its route (authentication, the rate limit): answers the
 * request and resolves `true` when it stops there, `false` when it goes on.
 */
export type RequestGuard = (request: FastifyRequest, reply: FastifyReply) => Promise<boolean>

/**
 * Fastify's own routing errors (whatever the router still refuses once undecodable paths are
 * routed literally and path parameters have no length limit) are answered as an unknown route. Fastify answers them before any hook, so the
 * guards the hooks run are run here, in order: a stranger gets the 401 as for any unknown route
 * (decision 0304), an account gets the 404 with its rate-limit headers and pays for it. The
 * guards are filled in once the app has registered them.
 */
export function answerFrameworkErrors(guards: readonly RequestGuard[]) {
  return (_error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    reply.header('x-request-id', request.id).headers(ALWAYS_HEADERS)
    void (async () => {
      try {
        for (const guard of guards) if (await guard(request, reply)) return
        await reply.code(404).type(JSON_TYPE).send(renderError('not_found', 'Route not found'))
      } catch (error) {
        if (!reply.sent) await sendError(error, request, reply)
      }
    })()
  }
}
