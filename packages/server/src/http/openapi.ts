import type { FastifyInstance, FastifySchema } from 'fastify'
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'

/**
 * The OpenAPI 3.1 description of the API, generated from the route schemas (http/schemas.ts)
 * and served without an API key at `/openapi.json`, with Swagger UI at `/docs`.
 *
 * Register it before any route: it learns the routes as they are added.
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Ticksupply API',
        version: '1.0.0',
        description: [
          'Market-data recording and exports. Every `POST` and `DELETE` is safe to retry with an',
          '`Idempotency-Key` (a UUID): the same key and request replay the first answer.',
          '',
          'Rate limits are per account, token buckets of `X-RateLimit-Limit-Minute` requests a',
          'minute and `X-RateLimit-Limit-Hour` an hour; a `429` says when to retry.',
        ].join('\n'),
      },
      components: {
        securitySchemes: { apiKey: { type: 'apiKey', in: 'header', name: 'X-Api-Key' } },
      },
      security: [{ apiKey: [] }],
      tags: [
        { name: 'Catalog', description: 'Exchanges, instruments and datastreams (read-only).' },
        { name: 'Subscriptions', description: 'What the account records, and when it did.' },
        { name: 'Billing', description: 'Plan, access status and usage.' },
        { name: 'Operations', description: 'For operators; no API key.' },
      ],
    },
    // Components keep the names of their `$id` instead of `def-0`, `def-1`, ...
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json['$id'] === 'string' ? json['$id'] : `def-${String(i)}`,
    },
    // OpenAPI 3.1 has `const`; keep it as written.
    convertConstToEnum: false,
    transform: ({ schema, url }) => ({ schema: withDocumentedQuerystring(schema), url }),
    transformObject: ({ ...document }) =>
      'openapiObject' in document
        ? addCommonHeaders(document.openapiObject)
        : document.swaggerObject,
  })
  await app.register(fastifySwaggerUi, {
    routePrefix: '/docs',
    uiConfig: { docExpansion: 'list', deepLinking: true, persistAuthorization: true },
    // The UI must not send the document to a validator on the internet.
    validatorUrl: false,
  })
  app.get('/openapi.json', { schema: { hide: true } }, (_request, reply) =>
    reply.send(app.swagger()),
  )
}

/** Shows `documentedQuerystring` as the query parameters; validation never saw it. */
function withDocumentedQuerystring(schema: FastifySchema | undefined): FastifySchema {
  if (schema?.documentedQuerystring === undefined) return schema ?? {}
  const { documentedQuerystring, ...rest } = schema
  return { ...rest, querystring: documentedQuerystring }
}

type Json = Record<string, unknown>

const RATE_LIMIT_HEADERS: Readonly<Record<string, Json>> = {
  'X-RateLimit-Limit-Minute': { description: 'Requests a minute (bucket size).' },
  'X-RateLimit-Remaining-Minute': { description: 'Requests left in the minute bucket.' },
  'X-RateLimit-Reset-Minute': {
    description: 'Only when the minute bucket is empty: the Unix second when it has a token again.',
  },
  'X-RateLimit-Limit-Hour': { description: 'Requests an hour (bucket size).' },
  'X-RateLimit-Remaining-Hour': { description: 'Requests left in the hour bucket.' },
  'X-RateLimit-Reset-Hour': {
    description: 'Only when the hour bucket is empty: the Unix second when it has a token again.',
  },
}

const HEADERS: Readonly<Record<string, Json>> = {
  'X-Request-Id': {
    description: "This request's id, `req_` and 16 hex digits.",
    schema: { type: 'string', pattern: '^req_[0-9a-f]{16}$' },
  },
  ...Object.fromEntries(
    Object.entries(RATE_LIMIT_HEADERS).map(([name, header]) => [
      name,
      { ...header, schema: { type: 'integer', minimum: 0 } },
    ]),
  ),
  'Retry-After': {
    description: 'Seconds to wait before retrying.',
    schema: { type: 'integer', minimum: 1 },
  },
  'Idempotent-Replayed': {
    description: '`true` when this is the stored answer to an earlier request with the same key.',
    schema: { type: 'string', enum: ['true'] },
  },
  'Original-Request': {
    description: 'On a replay: the `X-Request-Id` of the request that produced the answer.',
    schema: { type: 'string' },
  },
}

const IDEMPOTENCY_KEY_PARAMETER = {
  in: 'header',
  name: 'Idempotency-Key',
  required: false,
  description:
    'A UUID (hyphenated, simple, braced or URN; any letter case) naming this operation. A retry with the same key and request gets the first answer replayed; the same key with another request is a 409.',
  schema: { type: 'string', maxLength: 128 },
}

const headerRef = (name: string): Json => ({ $ref: `#/components/headers/${name}` })

/**
 * Documents what hooks add to answers, which route schemas cannot say: `X-Request-Id` on every
 * answer, the rate-limit headers on every authenticated one (`Retry-After` on a 429), and on
 * `POST`/`DELETE` the `Idempotency-Key` header and the replay headers.
 */
function addCommonHeaders<D extends object>(document: D): D {
  const doc = document as Json & { components?: Json; paths?: Record<string, Json | undefined> }
  doc.components = { ...doc.components, headers: HEADERS }
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    if (item === undefined) continue
    for (const [method, value] of Object.entries(item)) {
      const operation = value as Json & {
        responses?: Record<string, Json>
        parameters?: Json[]
      }
      if (typeof operation !== 'object' || operation.responses === undefined) continue
      const authenticated = path.startsWith('/v1/')
      const keyed = authenticated && (method === 'post' || method === 'delete')
      if (keyed) operation.parameters = [...(operation.parameters ?? []), IDEMPOTENCY_KEY_PARAMETER]
      for (const [status, response] of Object.entries(operation.responses)) {
        const headers: Json = { ...(response['headers'] as Json | undefined) }
        headers['X-Request-Id'] = headerRef('X-Request-Id')
        if (authenticated && status !== '401') {
          for (const name of Object.keys(RATE_LIMIT_HEADERS)) headers[name] = headerRef(name)
        }
        if (status === '429') headers['Retry-After'] = headerRef('Retry-After')
        if (keyed && Number(status) < 500 && !['401', '429'].includes(status)) {
          headers['Idempotent-Replayed'] = headerRef('Idempotent-Replayed')
          headers['Original-Request'] = headerRef('Original-Request')
        }
        response['headers'] = headers
      }
    }
  }
  return document
}
