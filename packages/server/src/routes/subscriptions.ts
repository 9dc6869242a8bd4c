import type { FastifyInstance } from 'fastify'
import type { Database } from '../db/database.js'
import {
  createSubscription,
  deleteSubscription,
  getSubscription,
  listSpans,
  listSubscriptions,
  pauseSubscription,
  resumeSubscription,
} from '../domain/subscriptions.js'
import { accountOf } from '../http/auth.js'
import type { MutationOptions } from '../http/mutation.js'
import { runMutation } from '../http/mutation.js'
import { parsePageQuery, renderPage } from '../http/pagination.js'
import { queryParam } from '../http/query.js'

const SUBSCRIPTION_PAGE = { defaultLimit: 50, maxLimit: 100 }

const createBody = {
  type: 'object',
  required: ['datastream_id'],
  additionalProperties: false,
  properties: { datastream_id: { type: 'integer', minimum: 1 } },
} as const

type IdParams = { Params: { id: string } }

export function registerSubscriptionRoutes(
  app: FastifyInstance,
  db: Database,
  mutation: MutationOptions,
): void {
  app.post<{ Body: { datastream_id: number } }>(
    '/v1/subscriptions',
    { schema: { body: createBody } },
    async (request, reply) =>
      runMutation(db, request, reply, mutation, async (tx, now) => {
        const subscription = await createSubscription(
          tx,
          accountOf(request),
          request.body.datastream_id,
          now,
        )
        return { status: 201, body: { ...subscription, spans: [] } }
      }),
  )

  app.get('/v1/subscriptions', async (request) => {
    const paging = parsePageQuery<string>(
      {
        limit: queryParam(request.query, 'limit'),
        page_token: queryParam(request.query, 'page_token'),
      },
      SUBSCRIPTION_PAGE,
      'string',
    )
    return renderPage(await listSubscriptions(db, accountOf(request), paging), paging.limit)
  })

  app.get<IdParams>('/v1/subscriptions/:id', async (request) =>
    getSubscription(db, accountOf(request), request.params.id),
  )

  app.get<IdParams>('/v1/subscriptions/:id/spans', async (request) =>
    listSpans(db, accountOf(request), request.params.id),
  )

  app.post<IdParams>('/v1/subscriptions/:id/pause', async (request, reply) =>
    runMutation(db, request, reply, mutation, async (tx, now) => {
      await pauseSubscription(tx, accountOf(request), request.params.id, now)
      return { status: 204 }
    }),
  )

  app.post<IdParams>('/v1/subscriptions/:id/resume', async (request, reply) =>
    runMutation(db, request, reply, mutation, async (tx, now) => {
      await resumeSubscription(tx, accountOf(request), request.params.id, now)
      return { status: 204 }
    }),
  )

  app.delete<IdParams>('/v1/subscriptions/:id', async (request, reply) =>
    runMutation(db, request, reply, mutation, async (tx) => {
      await deleteSubscription(tx, accountOf(request), request.params.id)
      return { status: 204 }
    }),
  )
}
