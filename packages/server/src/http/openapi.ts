import type { FastifyInstance, FastifySchema } from 'fastify'
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import type { IdempotencyPolicy } from './idempotency-policy.js'
import {
  describeApi,
  describeIdempotencyKey,
  idempotencyPolicyExtension,
} from './idempotency-policy.js'
import { renderJson } from './send-json.js'

/** What the document states that the server's configuration decides. */
export interface OpenApiSettings extends IdempotencyPolicy {
  /** Requests a minute per account (`RATE_LIMIT_PER_MINUTE`). */
  readonly rateLimitPerMinute: number
  /** Requests an hour per account (`RATE_LIMIT_PER_HOUR`). */
  readonly rateLimitPerHour: number
  /** The origin clients reach the server at (`PUBLIC_BASE_URL`); undefined: this document's. */
  readonly publicBaseUrl: string | undefined
}

/** Every tag an operation may carry, in the order the document lists them. */
export const OPENAPI_TAGS = [
  { name: 'Catalog', description: 'Exchanges, instruments and datastreams (read-only).' },
  { name: 'Subscriptions', description: 'What the account records, and when it did.' },
  {
    name: 'Availability',
    description: 'Which time ranges of a datastream hold data the account recorded.',
  },
  { name: 'Exports', description: 'Jobs that turn recorded data into files, and the files.' },
  { name: 'Export schemas', description: 'How exports map raw messages to columns.' },
  { name: 'Billing', description: 'Plan, access status and usage.' },
  { name: 'Operations', description: 'For operators; no API key.' },
] as const

/**
 * The OpenAPI 3.1 description of the API, generated from the route schemas (http/schemas.ts)
 * and served without an API key at `/openapi.json`, with Swagger UI at `/docs`. The idempotency
 * policy, the deadline and the rate limits in it are the values the server runs with.
 *
 * Register it before any route: it learns the routes as they are added.
 */
export async function registerOpenApi(
  app: FastifyInstance,
  settings: OpenApiSettings,
): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Ticksupply API',
        version: '1.0.0',
        description: describeApi(settings),
      },
      servers:
        settings.publicBaseUrl === undefined
          ? [{ url: '/', description: 'The server that serves this document.' }]
          : [{ url: settings.publicBaseUrl, description: 'This server.' }],
      components: {
        securitySchemes: { apiKey: { type: 'apiKey', in: 'header', name: 'X-Api-Key' } },
      },
      security: [{ apiKey: [] }],
      tags: OPENAPI_TAGS.map((tag) => ({ ...tag })),
    },
    // Components keep the names of their `$id` instead of `def-0`, `def-1`, ...
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json['$id'] === 'string' ? json['$id'] : `def-${String(i)}`,
    },
    // OpenAPI 3.1 has `const`; keep it as written.
    convertConstToEnum: false,
    transform: ({ schema, url }) => ({ schema: withDocumentedParts(schema), url }),
    transformObject: ({ ...document }) =>
      'openapiObject' in document
        ? completeDocument(document.openapiObject, settings)
        : document.swaggerObject,
  })
  // Swagger UI in a scope of its own, whose replies are serialised like /openapi.json (the
  // document holds int64 bounds as bigints, which JSON.stringify refuses).
  await app.register(async (scope) => {
    scope.setReplySerializer((payload) => renderJson(payload))
    await scope.register(fastifySwaggerUi, {
      routePrefix: '/docs',
      uiConfig: { docExpansion: 'list', deepLinking: true, persistAuthorization: true },
      // The UI must not send the document to a validator on the internet.
      validatorUrl: false,
    })
  })
  app.get('/openapi.json', { schema: { hide: true } }, (_request, reply) =>
    reply.type('application/json; charset=utf-8').send(renderJson(app.swagger())),
  )
}

const BODY_OPTIONAL = 'x-ticksupply-body-optional'

/** Shows `documentedQuerystring` and `documentedBody`; validation never saw them. */
function withDocumentedParts(schema: FastifySchema | undefined): FastifySchema {
  if (schema === undefined) return {}
  const { documentedQuerystring, documentedBody, ...rest } = schema
  return {
    ...rest,
    ...(documentedQuerystring === undefined ? {} : { querystring: documentedQuerystring }),
    ...(documentedBody === undefined
      ? {}
      : {
          body: documentedBody.schema,
          // Copied onto the operation by @fastify/swagger (it copies `x-` keys), read back below.
          ...(documentedBody.required === false ? { [BODY_OPTIONAL]: true } : {}),
        }),
  }
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
    description:
      'Seconds to wait before retrying: on a 429, and on the 409 of a request whose idempotency key is still in progress (`1`).',
    schema: { type: 'integer', minimum: 1 },
  },
  'Idempotent-Replayed': {
    description: '`true` when this is the stored answer to an earlier request with the same key.',
    schema: { type: 'string', enum: ['true'] },
  },
  'Original-Request': {
    description: 'On a replay: the `X-Request-Id` of the request that produced the answer.',
    schema: { type: 'string', pattern: '^req_[0-9a-f]{16}$' },
  },
}

const headerRef = (name: string): Json => ({ $ref: `#/components/headers/${name}` })

/** An error answer in the envelope, as the routes' own error responses are written. */
const errorAnswer = (description: string): Json => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
})

/**
 * Completes what route schemas cannot say: what hooks add to answers (`X-Request-Id` on every
 * answer, the rate-limit headers on every authenticated one, `Retry-After` on a 429, and on
 * `POST`/`DELETE` the `Idempotency-Key` header with the published policy and the replay
 * headers), optional bodies, and exact int64 bounds.
 */
function completeDocument<D extends object>(generated: D, settings: OpenApiSettings): D {
  // A copy: the generated object may share nodes with the routes' own schemas, which validate.
  const document = structuredClone(generated)
  const doc = document as Json & {
    info?: Json
    components?: Json
    paths?: Record<string, Json | undefined>
  }
  doc.info = { ...doc.info, ...idempotencyPolicyExtension(settings) }
  doc.components = { ...doc.components, headers: HEADERS }
  const idempotencyKey = {
    in: 'header',
    name: 'Idempotency-Key',
    required: false,
    description: describeIdempotencyKey(settings),
    schema: { type: 'string', minLength: 1, maxLength: 128 },
  }
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    if (item === undefined) continue
    for (const [method, value] of Object.entries(item)) {
      const operation = value as Json & {
        responses?: Record<string, Json>
        parameters?: Json[]
        requestBody?: Json
      }
      if (typeof operation !== 'object' || operation.responses === undefined) continue
      if (operation[BODY_OPTIONAL] === true) {
        Reflect.deleteProperty(operation, BODY_OPTIONAL)
        if (operation.requestBody !== undefined) operation.requestBody['required'] = false
      }
      const authenticated = path.startsWith('/v1/')
      const keyed = authenticated && (method === 'post' || method === 'delete')
      if (keyed) operation.parameters = [...(operation.parameters ?? []), idempotencyKey]
      // Checks of every request, whatever its route: a NUL in the query or a parameter given
      // twice is a 400 anywhere, and a keyed request can meet the idempotency 409s.
      operation.responses['400'] ??= errorAnswer(
        '`invalid_argument`: a NUL character in the query, or a query parameter given twice',
      )
      if (keyed) {
        operation.responses['409'] ??= errorAnswer(
          '`already_exists`: the idempotency key was reused with other parameters, or its request is still running',
        )
      }
      for (const [status, response] of Object.entries(operation.responses)) {
        const headers: Json = { ...(response['headers'] as Json | undefined) }
        headers['X-Request-Id'] = headerRef('X-Request-Id')
        if (authenticated && status !== '401') {
          for (const name of Object.keys(RATE_LIMIT_HEADERS)) headers[name] = headerRef(name)
        }
        if (status === '429') headers['Retry-After'] = headerRef('Retry-After')
        // The "still in progress" 409 asks the retry to wait a second.
        if (status === '409' && keyed) headers['Retry-After'] = headerRef('Retry-After')
        if (keyed && Number(status) < 500 && !['401', '429'].includes(status)) {
          headers['Idempotent-Replayed'] = headerRef('Idempotent-Replayed')
          headers['Original-Request'] = headerRef('Original-Request')
        }
        response['headers'] = headers
      }
    }
  }
  return withExactInt64Bounds(document)
}

const INT64_MAX = 9_223_372_036_854_775_807n

/**
 * Gives every int64 its exact bounds. A JSON number cannot hold 2^63 - 1 (it rounds to 2^63),
 * so the maximum is a bigint, which the document's serialiser writes digit for digit. Every
 * schema with `format: 'int64'` gets it (bodies with int64s are parsed by their routes, not by
 * ajv, which could not tell 2^63 - 1 from 2^63).
 */
function withExactInt64Bounds<T>(node: T): T {
  if (Array.isArray(node)) {
    for (const item of node) withExactInt64Bounds(item)
    return node
  }
  if (typeof node !== 'object' || node === null) return node
  const schema = node as Json
  if (
    schema['type'] === 'integer' &&
    schema['format'] === 'int64' &&
    schema['maximum'] === undefined
  ) {
    schema['maximum'] = INT64_MAX
  }
  for (const value of Object.values(schema)) withExactInt64Bounds(value)
  return node
}
