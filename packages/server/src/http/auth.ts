import type { FastifyInstance } from 'fastify'
import type { Database } from '../db/database.js'
import type { Account } from '../domain/accounts.js'
import { authenticate } from '../domain/accounts.js'
import { JSON_TYPE, renderError } from './envelope.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated account; set on every `/v1` request that got past authentication. */
    account: Account | null
  }
}

/** `X-Api-Key` on every `/v1` request; a missing, unknown or revoked key is a 401. */
export function registerAuth(app: FastifyInstance, db: Database): void {
  app.decorateRequest('account', null)
  app.addHook('onRequest', async (request, reply) => {
    if (!request.url.startsWith('/v1/') && request.url !== '/v1') return undefined
    const header = request.headers['x-api-key']
    const account =
      typeof header === 'string' && header !== '' ? await authenticate(db, header) : undefined
    if (account === undefined) {
      return reply
        .code(401)
        .type(JSON_TYPE)
        .send(renderError('unauthenticated', 'Invalid or missing API key'))
    }
    request.account = account
    return undefined
  })
}

/** The account of a request that passed {@link registerAuth}. */
export function accountOf(request: { account: Account | null }): Account {
  if (request.account === null) throw new Error('route reached without authentication')
  return request.account
}
