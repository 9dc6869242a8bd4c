import type { FastifyReply } from 'fastify'
import { stringifyJsonWithInt64 } from '../domain/json-int64.js'
import { JSON_TYPE } from './envelope.js'

/**
 * The one serialiser of every resource the API answers with, GET and mutation alike: fields in
 * the order the domain builds them, `bigint` values (int64 nanoseconds) as exact JSON integers.
 * Mutations store this text for replay (`runMutation`'s `bodyText`), reads send it, so a
 * resource reads the same whichever route answered it.
 */
export function renderJson(value: unknown): string {
  return stringifyJsonWithInt64(value)
}

/** Sends a value as {@link renderJson} text; Fastify sends a string as it is. */
export function sendJson(reply: FastifyReply, value: unknown): FastifyReply {
  return reply.type(JSON_TYPE).send(renderJson(value))
}
