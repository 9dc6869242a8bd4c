import type { FastifyInstance } from 'fastify'
import type { Database } from '../db/database.js'
import { ApiError } from '../domain/api-error.js'
import { STREAM_TYPE_INPUTS, STREAM_TYPES, parseStreamType } from '../domain/catalog-seed.js'
import { listDatastreams, listExchanges, listInstruments } from '../domain/catalog.js'
import { parsePageQuery, renderPage } from '../http/pagination.js'
import { queryParam } from '../http/query.js'
import { sendJson } from '../http/send-json.js'
import { addComponentSchemas, errorResponses, pageOf, pageQuery, ref } from '../http/schemas.js'
import {
  CATALOG_SCHEMAS,
  DATASTREAM_SCHEMA,
  EXCHANGE_SCHEMA,
  INSTRUMENT_SCHEMA,
} from './schemas/catalog.js'

const CATALOG_PAGE = { defaultLimit: 100, maxLimit: 1000 }
const TAGS = ['Catalog']

export function registerCatalogRoutes(app: FastifyInstance, db: Database): void {
  addComponentSchemas(app, CATALOG_SCHEMAS)

  app.get(
    '/v1/exchanges',
    {
      schema: {
        operationId: 'listExchanges',
        summary: 'List the exchanges',
        tags: TAGS,
        response: {
          200: {
            description: 'Every exchange (not paged).',
            type: 'array',
            items: ref(EXCHANGE_SCHEMA.$id),
          },
          ...errorResponses(),
        },
      },
    },
    async (_request, reply) => sendJson(reply, await listExchanges(db)),
  )

  app.get<{ Params: { exchange: string } }>(
    '/v1/exchanges/:exchange/instruments',
    {
      schema: {
        operationId: 'listInstruments',
        summary: "List an exchange's instruments",
        description: 'Sorted by symbol. An unknown exchange is a 404.',
        tags: TAGS,
        params: {
          type: 'object',
          required: ['exchange'],
          properties: { exchange: { type: 'string', description: 'An exchange `code`.' } },
        },
        documentedQuerystring: {
          type: 'object',
          properties: {
            search: {
              type: 'string',
              description: 'Symbols starting with this, in any letter case.',
            },
            ...pageQuery(CATALOG_PAGE),
          },
        },
        response: {
          200: pageOf(INSTRUMENT_SCHEMA.$id, 'A page of instruments.'),
          ...errorResponses([400, 404]),
        },
      },
    },
    async (request, reply) => {
      const query = {
        limit: queryParam(request.query, 'limit'),
        page_token: queryParam(request.query, 'page_token'),
      }
      const paging = parsePageQuery<string>(query, CATALOG_PAGE, 'string')
      const result = await listInstruments(db, {
        exchange: request.params.exchange,
        search: queryParam(request.query, 'search'),
        ...paging,
      })
      return sendJson(reply, renderPage(result, paging.limit))
    },
  )

  app.get(
    '/v1/datastreams',
    {
      schema: {
        operationId: 'listDatastreams',
        summary: 'List the datastreams',
        description: 'Sorted by `datastream_id`; the filters combine.',
        tags: TAGS,
        documentedQuerystring: {
          type: 'object',
          properties: {
            exchange: { type: 'string', description: 'Only this exchange.' },
            instrument: { type: 'string', description: 'Only this instrument symbol.' },
            stream_type: {
              type: 'string',
              enum: [...STREAM_TYPE_INPUTS],
              description:
                'Only this stream type (`trades` is accepted for `trade`); another value is a 400.',
            },
            ...pageQuery(CATALOG_PAGE),
          },
        },
        response: {
          200: pageOf(DATASTREAM_SCHEMA.$id, 'A page of datastreams.'),
          ...errorResponses([400]),
        },
      },
    },
    async (request, reply) => {
      const paging = parsePageQuery<number>(
        {
          limit: queryParam(request.query, 'limit'),
          page_token: queryParam(request.query, 'page_token'),
        },
        CATALOG_PAGE,
        'number',
      )
      const given = queryParam(request.query, 'stream_type')
      const streamType = given === undefined ? undefined : parseStreamType(given)
      if (given !== undefined && streamType === undefined) {
        throw new ApiError(
          'invalid_argument',
          `stream_type must be one of ${STREAM_TYPES.join(', ')}`,
        )
      }
      const result = await listDatastreams(db, {
        exchange: queryParam(request.query, 'exchange'),
        instrument: queryParam(request.query, 'instrument'),
        streamType,
        ...paging,
      })
      return sendJson(reply, renderPage(result, paging.limit))
    },
  )
}
