import type { FastifyInstance } from 'fastify'
import type { Database } from '../db/database.js'
import { billingSummary } from '../domain/billing.js'
import { accountOf } from '../http/auth.js'
import { addComponentSchemas, errorResponses, ref } from '../http/schemas.js'
import { sendJson } from '../http/send-json.js'
import { BILLING_SCHEMAS, BILLING_SUMMARY_SCHEMA } from './schemas/billing.js'

export function registerBillingRoutes(app: FastifyInstance, db: Database): void {
  addComponentSchemas(app, BILLING_SCHEMAS)

  app.get(
    '/v1/billing/summary',
    {
      schema: {
        operationId: 'getBillingSummary',
        summary: "The account's plan, access status and usage this period",
        description:
          'Explains a 402: `SUSPENDED` and `NONE` accounts cannot create or resume subscriptions or create exports. The period is the calendar month in UTC.',
        tags: ['Billing'],
        response: {
          200: ref(BILLING_SUMMARY_SCHEMA.$id, 'The billing summary.'),
          ...errorResponses(),
        },
      },
    },
    async (request, reply) =>
      sendJson(reply, await billingSummary(db, accountOf(request).id, Date.now())),
  )
}
