import type { FastifyRequest } from 'fastify'

/** `{protocol}://{host}` of the request as the client addressed it (for absolute links). */
export function requestOrigin(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`
}
