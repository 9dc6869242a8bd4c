import type { FastifyInstance } from 'fastify'
import type { Database } from '../db/database.js'
import { getAvailability } from '../domain/availability.js'
import { parseDatastreamIdParam } from '../domain/datastream-id.js'
import type { RecorderSource } from '../domain/exports/recorder-source.js'
import { createSyntheticRecorderSource } from '../domain/exports/recorder-source.js'
import { accountOf } from '../http/auth.js'
import { queryParam } from '../http/query.js'
import { addComponentSchemas, errorResponses, int64, ref } from '../http/schemas.js'
import { sendJson } from '../http/send-json.js'
import { AVAILABILITY_SCHEMA, AVAILABILITY_SCHEMAS } from './schemas/availability.js'

/** `GET /v1/availability?datastream_id=N`: the time ranges the account holds data for. */
export function registerAvailabilityRoutes(
  app: FastifyInstance,
  db: Database,
  source: RecorderSource = createSyntheticRecorderSource(),
): void {
  addComponentSchemas(app, AVAILABILITY_SCHEMAS)
  app.get(
    '/v1/availability',
    {
      schema: {
        operationId: 'getAvailability',
        summary: "A datastream's recorded time ranges",
        description:
          "The ranges the account's subscription recorded (its spans, touching ones merged, an open one ending now), oldest first; none without a subscription or after it was deleted. A missing or malformed `datastream_id` is a 400, an unknown one a 404.",
        tags: ['Availability'],
        documentedQuerystring: {
          type: 'object',
          required: ['datastream_id'],
          properties: { datastream_id: int64(1, 'The datastream.') },
        },
        response: {
          200: ref(AVAILABILITY_SCHEMA.$id, 'The recorded ranges.'),
          ...errorResponses([400, 404]),
        },
      },
    },
    async (request, reply) => {
      const datastreamId = parseDatastreamIdParam(queryParam(request.query, 'datastream_id'))
      return sendJson(
        reply,
        await getAvailability(db, accountOf(request), datastreamId, source, Date.now()),
      )
    },
  )
}
