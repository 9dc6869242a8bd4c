import type { FastifyInstance } from 'fastify'
import type { Database } from '../../db/database.js'
import {
  parseCreateSchemaBody,
  parseDraftBody,
  parseReplaceSchemaBody,
} from '../../domain/exports/schema-definition.js'
import {
  createDraft,
  createSchema,
  deleteDraft,
  deleteSchema,
  getDraft,
  getSchema,
  listSchemas,
  publishDraft,
  replaceSchema,
  updateDraft,
} from '../../domain/exports/export-schemas.js'
import { accountOf } from '../../http/auth.js'
import { deadlineSignal } from '../../http/deadline.js'
import type { MutationOptions } from '../../http/mutation.js'
import { runMutation } from '../../http/mutation.js'
import { parseBodyOnce } from '../../http/parse-body-once.js'
import {
  addComponentSchemas,
  errorResponses,
  idParams,
  noContent,
  ref,
} from '../../http/schemas.js'
import { renderJson, sendJson } from '../../http/send-json.js'
import {
  CREATE_SCHEMA_BODY,
  DRAFT_BODY,
  REPLACE_SCHEMA_BODY,
  EXPORT_SCHEMA_SCHEMA,
  EXPORT_SCHEMAS,
} from '../schemas/exports.js'

type IdParams = { Params: { id: string } }

const TAGS = ['Export schemas']
const params = idParams(
  'An export schema id (`sch_...`); a malformed, unknown or (to change) built-in one is a 404.',
)
const schemaAnswer = (description: string) => ref(EXPORT_SCHEMA_SCHEMA.$id, description)

const createBody = parseBodyOnce(parseCreateSchemaBody)
const replaceBody = parseBodyOnce(parseReplaceSchemaBody)
// An empty body copies the published version, and so does `{}`, as on every call that may take
// no body (decision 0005); a body with content is the draft's content.
const createDraftBody = parseBodyOnce((body) =>
  body === undefined || isEmptyObject(body) ? undefined : parseDraftBody(body),
)

function isEmptyObject(body: unknown): boolean {
  return (
    typeof body === 'object' &&
    body !== null &&
    !Array.isArray(body) &&
    Object.keys(body).length === 0
  )
}
const updateDraftBody = parseBodyOnce(parseDraftBody)

/**
 * Export schemas. Bodies are validated in `preValidation`, before the idempotency key is
 * claimed, so that a client that fixes a rejected body may retry with the same key.
 */
export function registerExportSchemaRoutes(
  app: FastifyInstance,
  db: Database,
  mutation: MutationOptions,
): void {
  addComponentSchemas(app, EXPORT_SCHEMAS)

  app.post(
    '/v1/export-schemas',
    {
      schema: {
        operationId: 'createExportSchema',
        summary: 'Create an export schema',
        description:
          '`name` is unique per account and stream category; it and `stream_category` never change.',
        tags: TAGS,
        documentedBody: { schema: CREATE_SCHEMA_BODY },
        response: { 201: schemaAnswer('The schema, version 1.'), ...errorResponses([400, 409]) },
      },
      preValidation: createBody.preValidation,
    },
    async (request, reply) =>
      runMutation(db, request, reply, mutation, async (tx, now) => ({
        status: 201,
        bodyText: renderJson(
          await createSchema(tx, accountOf(request), createBody.of(request), now),
        ),
      })),
  )

  app.get(
    '/v1/export-schemas',
    {
      schema: {
        operationId: 'listExportSchemas',
        summary: 'List export schemas',
        description: "Built-ins first (never `raw`), then the account's own (not paged).",
        tags: TAGS,
        response: {
          200: { description: 'The schemas.', type: 'array', items: ref(EXPORT_SCHEMA_SCHEMA.$id) },
          ...errorResponses(),
        },
      },
    },
    async (request, reply) => sendJson(reply, await listSchemas(db, accountOf(request))),
  )

  app.get<IdParams>(
    '/v1/export-schemas/:id',
    {
      schema: {
        operationId: 'getExportSchema',
        summary: 'Get an export schema',
        description: 'Its latest published version.',
        tags: TAGS,
        params,
        response: { 200: schemaAnswer('The schema.'), ...errorResponses([404]) },
      },
    },
    async (request, reply) =>
      sendJson(reply, await getSchema(db, accountOf(request), request.params.id)),
  )

  app.delete<IdParams>(
    '/v1/export-schemas/:id',
    {
      schema: {
        operationId: 'deleteExportSchema',
        summary: 'Delete an export schema',
        description: 'Exports made from it keep their snapshot. Built-ins: 404.',
        tags: TAGS,
        params,
        response: { 204: noContent('Deleted.'), ...errorResponses([400, 404, 409]) },
      },
    },
    async (request, reply) =>
      runMutation(db, request, reply, mutation, async (tx) => {
        await deleteSchema(tx, accountOf(request), request.params.id)
        return { status: 204 }
      }),
  )

  // PUT replaces the published version on every call: the Idempotency-Key header plays no part.
  app.put<IdParams>(
    '/v1/export-schemas/:id',
    {
      schema: {
        operationId: 'replaceExportSchema',
        summary: 'Replace an export schema (publish a new version)',
        description:
          'The atomic update: `columns`, `unfold`? and `derive`? (omitted or null clears them) become version + 1 at once, without a draft; a draft, if any, stays. `name` and `stream_category` never change: sent back unchanged they are accepted, another value is a 400. `Idempotency-Key` is ignored. Built-ins: 404.',
        tags: TAGS,
        params,
        documentedBody: { schema: REPLACE_SCHEMA_BODY },
        response: {
          200: schemaAnswer('The schema, its new version.'),
          ...errorResponses([400, 404]),
        },
      },
      preValidation: replaceBody.preValidation,
    },
    async (request, reply) =>
      sendJson(
        reply,
        await db.transaction(
          (tx) =>
            replaceSchema(
              tx,
              accountOf(request),
              request.params.id,
              replaceBody.of(request),
              Date.now(),
            ),
          { signal: deadlineSignal(request) },
        ),
      ),
  )

  app.post<IdParams>(
    '/v1/export-schemas/:id/draft',
    {
      schema: {
        operationId: 'createExportSchemaDraft',
        summary: 'Create or replace the draft',
        description:
          'No body (or `{}`): a copy of the published version. A body (`columns`, `unfold`?, `derive`?): that content. Replaces any draft.',
        tags: TAGS,
        params,
        documentedBody: { schema: DRAFT_BODY, required: false },
        response: { 201: schemaAnswer('The draft.'), ...errorResponses([400, 404, 409]) },
      },
      preValidation: createDraftBody.preValidation,
    },
    async (request, reply) =>
      runMutation(db, request, reply, mutation, async (tx) => ({
        status: 201,
        bodyText: renderJson(
          await createDraft(tx, accountOf(request), request.params.id, createDraftBody.of(request)),
        ),
      })),
  )

  app.get<IdParams>(
    '/v1/export-schemas/:id/draft',
    {
      schema: {
        operationId: 'getExportSchemaDraft',
        summary: 'Get the draft',
        tags: TAGS,
        params,
        response: { 200: schemaAnswer('The draft.'), ...errorResponses([404]) },
      },
    },
    async (request, reply) =>
      sendJson(reply, await getDraft(db, accountOf(request), request.params.id)),
  )

  // PUT replaces the draft on every call: the Idempotency-Key header plays no part.
  app.put<IdParams>(
    '/v1/export-schemas/:id/draft',
    {
      schema: {
        operationId: 'updateExportSchemaDraft',
        summary: 'Replace the draft',
        description: 'The draft must exist (404 otherwise). `Idempotency-Key` is ignored.',
        tags: TAGS,
        params,
        documentedBody: { schema: DRAFT_BODY },
        response: { 200: schemaAnswer('The draft.'), ...errorResponses([400, 404]) },
      },
      preValidation: updateDraftBody.preValidation,
    },
    async (request, reply) =>
      sendJson(
        reply,
        await db.transaction(
          (tx) =>
            updateDraft(tx, accountOf(request), request.params.id, updateDraftBody.of(request)),
          { signal: deadlineSignal(request) },
        ),
      ),
  )

  app.delete<IdParams>(
    '/v1/export-schemas/:id/draft',
    {
      schema: {
        operationId: 'deleteExportSchemaDraft',
        summary: 'Discard the draft',
        tags: TAGS,
        params,
        response: { 204: noContent('Discarded.'), ...errorResponses([400, 404, 409]) },
      },
    },
    async (request, reply) =>
      runMutation(db, request, reply, mutation, async (tx) => {
        await deleteDraft(tx, accountOf(request), request.params.id)
        return { status: 204 }
      }),
  )

  app.post<IdParams>(
    '/v1/export-schemas/:id/publish',
    {
      schema: {
        operationId: 'publishExportSchemaDraft',
        summary: 'Publish the draft',
        description: 'The draft becomes version + 1 and is gone. No draft: 404.',
        tags: TAGS,
        params,
        response: { 200: schemaAnswer('The schema.'), ...errorResponses([400, 404, 409]) },
      },
    },
    async (request, reply) =>
      runMutation(db, request, reply, mutation, async (tx, now) => ({
        status: 200,
        bodyText: renderJson(await publishDraft(tx, accountOf(request), request.params.id, now)),
      })),
  )
}
