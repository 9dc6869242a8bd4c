import type { FastifyInstance } from 'fastify'
import type { Database } from '../db/database.js'
import {
  createSubscription,
  deleteSubscription,
  getSubscription,
  listSpans,
  listSubscriptions,
  parseCreateSubscriptionBody,
  pauseSubscription,
  resumeSubscription,
} from '../domain/subscriptions.js'
import { accountOf } from '../http/auth.js'
import type { MutationOptions } from '../http/mutation.js'
import { runMutation } from '../http/mutation.js'
import { parsePageQuery, renderPage } from '../http/pagination.js'
import { parseBodyOnce } from '../http/parse-body-once.js'
import { queryParam } from '../http/query.js'
import { renderJson, sendJson } from '../http/send-json.js'
import {
  addComponentSchemas,
  errorResponses,
  idParams,
  noContent,
  pageOf,
  pageQuery,
  ref,
} from '../http/schemas.js'
import {
  CREATE_SUBSCRIPTION_BODY,
  SPAN_SCHEMA,
  SUBSCRIPTION_SCHEMA,
  SUBSCRIPTION_SCHEMAS,
} from './schemas/subscriptions.js'

const createBody = parseBodyOnce(parseCreateSubscriptionBody)
const SUBSCRIPTION_PAGE = { defaultLimit: 50, maxLimit: 100 }
const TAGS = ['Subscriptions']
const params = idParams('A subscription id (`sub_...`); a malformed or unknown one is a 404.')

type IdParams = { Params: { id: string } }

export function registerSubscriptionRoutes(
  app: FastifyInstance,
  db: Database,
  mutation: MutationOptions,
): void {
  addComponentSchemas(app, SUBSCRIPTION_SCHEMAS)

  app.post(
    '/v1/subscriptions',
    {
      schema: {
        operationId: 'createSubscription',
        summary: 'Subscribe to a datastream',
        description:
          'Opens a span now. A deleted subscription to the datastream is reused (same id, fresh span); an active or paused one is a 409 with `details.subscription_id`. Billing-gated.',
        tags: TAGS,
        documentedBody: { schema: CREATE_SUBSCRIPTION_BODY },
        response: {
          201: ref(SUBSCRIPTION_SCHEMA.$id, 'The subscription, with `spans: []`.'),
          ...errorResponses([400, 402, 404, 409]),
        },
      },
      preValidation: createBody.preValidation,
    },
    async (request, reply) =>
      runMutation(db, request, reply, mutation, async (tx, now) => {
        const subscription = await createSubscription(
          tx,
          accountOf(request),
          createBody.of(request).datastreamId,
          now,
        )
        return { status: 201, bodyText: renderJson({ ...subscription, spans: [] }) }
      }),
  )

  app.get(
    '/v1/subscriptions',
    {
      schema: {
        operationId: 'listSubscriptions',
        summary: 'List subscriptions',
        description: 'Newest first. Deleted subscriptions are left out, also from `total`.',
        tags: TAGS,
        documentedQuerystring: { type: 'object', properties: pageQuery(SUBSCRIPTION_PAGE) },
        response: {
          200: pageOf(SUBSCRIPTION_SCHEMA.$id, 'A page of subscriptions.'),
          ...errorResponses([400]),
        },
      },
    },
    async (request, reply) => {
      const paging = parsePageQuery<string>(
        {
          limit: queryParam(request.query, 'limit'),
          page_token: queryParam(request.query, 'page_token'),
        },
        SUBSCRIPTION_PAGE,
        'string',
      )
      const page = await listSubscriptions(db, accountOf(request), paging)
      return sendJson(reply, renderPage(page, paging.limit))
    },
  )

  app.get<IdParams>(
    '/v1/subscriptions/:id',
    {
      schema: {
        operationId: 'getSubscription',
        summary: 'Get a subscription',
        description: 'A deleted subscription is shown with `status: "deleted"`.',
        tags: TAGS,
        params,
        response: {
          200: ref(SUBSCRIPTION_SCHEMA.$id, 'The subscription.'),
          ...errorResponses([404]),
        },
      },
    },
    async (request, reply) =>
      sendJson(reply, await getSubscription(db, accountOf(request), request.params.id)),
  )

  app.get<IdParams>(
    '/v1/subscriptions/:id/spans',
    {
      schema: {
        operationId: 'listSpans',
        summary: "List a subscription's spans",
        description: 'Oldest first (not paged).',
        tags: TAGS,
        params,
        response: {
          200: { description: 'The spans.', type: 'array', items: ref(SPAN_SCHEMA.$id) },
          ...errorResponses([404]),
        },
      },
    },
    async (request, reply) =>
      sendJson(reply, await listSpans(db, accountOf(request), request.params.id)),
  )

  app.post<IdParams>(
    '/v1/subscriptions/:id/pause',
    {
      schema: {
        operationId: 'pauseSubscription',
        summary: 'Pause a subscription',
        description:
          'Closes the open span; already paused: no change. A deleted subscription is a 403.',
        tags: TAGS,
        params,
        response: {
          204: noContent('Paused.'),
          ...errorResponses([400, 403, 404, 409]),
        },
      },
    },
    async (request, reply) =>
      runMutation(db, request, reply, mutation, async (tx, now) => {
        await pauseSubscription(tx, accountOf(request), request.params.id, now)
        return { status: 204 }
      }),
  )

  app.post<IdParams>(
    '/v1/subscriptions/:id/resume',
    {
      schema: {
        operationId: 'resumeSubscription',
        summary: 'Resume a subscription',
        description:
          'Opens a span; already active: no change. A deleted subscription is a 403. Billing-gated.',
        tags: TAGS,
        params,
        response: {
          204: noContent('Recording.'),
          ...errorResponses([400, 402, 403, 404, 409]),
        },
      },
    },
    async (request, reply) =>
      runMutation(db, request, reply, mutation, async (tx, now) => {
        await resumeSubscription(tx, accountOf(request), request.params.id, now)
        return { status: 204 }
      }),
  )

  app.delete<IdParams>(
    '/v1/subscriptions/:id',
    {
      schema: {
        operationId: 'deleteSubscription',
        summary: 'Delete a subscription',
        description: 'Stops recording and removes every span; already deleted: no change.',
        tags: TAGS,
        params,
        response: {
          204: noContent('Deleted.'),
          ...errorResponses([400, 404, 409]),
        },
      },
    },
    async (request, reply) =>
      runMutation(db, request, reply, mutation, async (tx) => {
        await deleteSubscription(tx, accountOf(request), request.params.id)
        return { status: 204 }
      }),
  )
}
