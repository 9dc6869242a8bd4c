import type { FastifyInstance } from 'fastify'
import type { Database } from '../db/database.js'
import { ApiError } from '../domain/api-error.js'
import { STREAM_TYPES } from '../domain/catalog-seed.js'
import { listDatastreams, listExchanges, listInstruments } from '../domain/catalog.js'
import { parsePageQuery, renderPage } from '../http/pagination.js'
import { queryParam } from '../http/query.js'

const CATALOG_PAGE = { defaultLimit: 100, maxLimit: 1000 }

export function registerCatalogRoutes(app: FastifyInstance, db: Database): void {
  app.get('/v1/exchanges', async () => listExchanges(db))

  app.get<{ Params: { exchange: string } }>(
    '/v1/exchanges/:exchange/instruments',
    async (request) => {
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
      return renderPage(result, paging.limit)
    },
  )

  app.get('/v1/datastreams', async (request) => {
    const paging = parsePageQuery<number>(
      {
        limit: queryParam(request.query, 'limit'),
        page_token: queryParam(request.query, 'page_token'),
      },
      CATALOG_PAGE,
      'number',
    )
    const streamType = queryParam(request.query, 'stream_type')
    if (streamType !== undefined && !(STREAM_TYPES as readonly string[]).includes(streamType)) {
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
    return renderPage(result, paging.limit)
  })
}
