import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Database } from '../db/database.js'
import { ApiError } from '../domain/api-error.js'
import { registerJsonBody } from '../http/json-body.js'
import {
  cancelExport,
  createExport,
  deleteExport,
  exportPrefix,
  findArtifact,
  getExport,
  listArtifacts,
  listExports,
  parseCreateExportBody,
  renderJob,
  renderJobs,
} from '../domain/exports.js'
import { parseJsonKeepingInt64 } from '../domain/json-int64.js'
import type { ArtifactStore } from '../exports/artifact-store.js'
import { checkDownload, downloadPath } from '../exports/download-links.js'
import { accountOf } from '../http/auth.js'
import { JSON_TYPE } from '../http/envelope.js'
import type { MutationOptions } from '../http/mutation.js'
import { runMutation } from '../http/mutation.js'
import {
  addComponentSchemas,
  errorResponses,
  idParams,
  noContent,
  pageOf,
  pageQuery,
  ref,
} from '../http/schemas.js'
import { sendJson, validated } from './export-schemas.js'
import {
  CREATE_EXPORT_BODY,
  EXPORT_DOWNLOAD_SCHEMA,
  EXPORT_JOB_SCHEMA,
  EXPORT_SCHEMAS,
} from './schemas/exports.js'
import { parsePageQuery, renderPage } from '../http/pagination.js'
import { queryParam } from '../http/query.js'

const EXPORT_PAGE = { defaultLimit: 50, maxLimit: 100 }

export interface ExportRouteOptions {
  readonly mutation: MutationOptions
  readonly store: ArtifactStore
  /** Wakes the export worker when a job was queued. */
  readonly onQueued: () => void
  readonly signingSecret: () => string
  readonly downloadUrlTtlS: number
  /** The base of download links; the request's own origin when undefined. */
  readonly publicBaseUrl: string | undefined
  readonly bodyLimit: number
}

type IdParams = { Params: { id: string } }

const TAGS = ['Exports']
const params = idParams('An export id (`exp_...`); a malformed or unknown one is a 404.')

/**
 * Exports, and the signed download links of their files. They live in their own encapsulated
 * scope for one reason: its JSON parser keeps integers past 2^53 exact (nanosecond times).
 */
export function registerExportRoutes(
  app: FastifyInstance,
  db: Database,
  options: ExportRouteOptions,
): void {
  void app.register((scope, _options, done) => {
    registerJsonBody(scope, options.bodyLimit, parseJsonKeepingInt64)
    registerRoutes(scope, db, options)
    done()
  })
}

function registerRoutes(app: FastifyInstance, db: Database, options: ExportRouteOptions): void {
  const { mutation } = options
  addComponentSchemas(app, EXPORT_SCHEMAS)

  app.post(
    '/v1/exports',
    {
      schema: {
        operationId: 'createExport',
        summary: 'Create an export',
        description:
          "Queues a job over the subscription's spans clipped to `[start_time, end_time)`; the schema's published version is snapshotted now. Never subscribed or deleted subscription: 403. Billing-gated.",
        tags: TAGS,
        body: CREATE_EXPORT_BODY,
        response: {
          202: ref(EXPORT_JOB_SCHEMA.$id, 'The job, `queued`.'),
          ...errorResponses([400, 402, 403, 404, 409]),
        },
      },
      preValidation: validated((request) => parseCreateExportBody(request.body)),
    },
    async (request, reply) => {
      const payload = await runMutation(db, request, reply, mutation, async (tx, now) => ({
        status: 202,
        bodyText: renderJob(
          await createExport(tx, accountOf(request), parseCreateExportBody(request.body), now),
        ),
      }))
      options.onQueued()
      return payload
    },
  )

  app.get(
    '/v1/exports',
    {
      schema: {
        operationId: 'listExports',
        summary: 'List exports',
        description: 'Newest first.',
        tags: TAGS,
        documentedQuerystring: { type: 'object', properties: pageQuery(EXPORT_PAGE) },
        response: {
          200: pageOf(EXPORT_JOB_SCHEMA.$id, 'A page of exports.'),
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
        EXPORT_PAGE,
        'string',
      )
      const page = await listExports(db, accountOf(request), paging)
      return reply.type(JSON_TYPE).send(renderJobs(renderPage(page, paging.limit)))
    },
  )

  app.get<IdParams>(
    '/v1/exports/:id',
    {
      schema: {
        operationId: 'getExport',
        summary: 'Get an export',
        tags: TAGS,
        params,
        response: { 200: ref(EXPORT_JOB_SCHEMA.$id, 'The job.'), ...errorResponses([404]) },
      },
    },
    async (request, reply) =>
      reply
        .type(JSON_TYPE)
        .send(renderJob(await getExport(db, accountOf(request), request.params.id))),
  )

  app.post<IdParams>(
    '/v1/exports/:id/cancel',
    {
      schema: {
        operationId: 'cancelExport',
        summary: 'Cancel an export',
        description:
          'Queued or running: it stops, and its partial files are removed. Canceled already: 204. Succeeded or failed: 400.',
        tags: TAGS,
        params,
        response: { 204: noContent('Canceled.'), ...errorResponses([400, 404, 409]) },
      },
    },
    async (request, reply) =>
      runMutation(db, request, reply, mutation, async (tx, now) => {
        await cancelExport(tx, accountOf(request), request.params.id, now)
        return { status: 204 }
      }),
  )

  app.delete<IdParams>(
    '/v1/exports/:id',
    {
      schema: {
        operationId: 'deleteExport',
        summary: 'Delete an export',
        description: 'Cancels it if running, deletes the job and its files; then it is a 404.',
        tags: TAGS,
        params,
        response: { 204: noContent('Deleted.'), ...errorResponses([400, 404, 409]) },
      },
    },
    async (request, reply) => {
      const payload = await runMutation(db, request, reply, mutation, async (tx) => {
        await deleteExport(tx, accountOf(request), request.params.id)
        return { status: 204 }
      })
      // The job is gone (committed); its files follow. Should this process die right here, the
      // worker's sweep at the next start removes the folder.
      await options.store.deletePrefix(exportPrefix(request.params.id))
      return payload
    },
  )

  app.get<IdParams>(
    '/v1/exports/:id/download',
    {
      schema: {
        operationId: 'downloadExport',
        summary: "Get an export's download links",
        description:
          'Signed links, valid for `DOWNLOAD_URL_TTL_SECONDS` (default an hour), fresh on every call. Not succeeded yet: 400.',
        tags: TAGS,
        params,
        response: {
          200: ref(EXPORT_DOWNLOAD_SCHEMA.$id, 'The files.'),
          ...errorResponses([400, 404]),
        },
      },
    },
    async (request, reply) => {
      const artifacts = await listArtifacts(db, accountOf(request), request.params.id)
      const expiresAtS = Math.floor(Date.now() / 1000) + options.downloadUrlTtlS
      const base = options.publicBaseUrl ?? originOf(request)
      return sendJson(reply, {
        artifacts: artifacts.map((artifact) => ({
          id: artifact.id,
          url: `${base}${downloadPath(options.signingSecret(), artifact.id, expiresAtS)}`,
          bytes: artifact.bytes,
          filename: artifact.filename,
        })),
        count: artifacts.length,
        total_bytes: artifacts.reduce((sum, artifact) => sum + artifact.bytes, 0),
      })
    },
  )

  // The signed link is the credential: no API key, so it lives outside /v1.
  app.get<{ Params: { artifactId: string }; Querystring: Record<string, unknown> }>(
    '/downloads/:artifactId',
    {
      schema: {
        operationId: 'downloadArtifact',
        summary: 'Download an export file',
        description:
          'The signed link from `GET /v1/exports/{id}/download`; no API key. Invalid or expired: 403; deleted: 404.',
        tags: TAGS,
        security: [],
        params: {
          type: 'object',
          required: ['artifactId'],
          properties: {
            artifactId: { type: 'string', description: 'An artifact id (`art_...`).' },
          },
        },
        documentedQuerystring: {
          type: 'object',
          properties: {
            expires: { type: 'integer', description: 'Unix seconds when the link stops working.' },
            sig: { type: 'string', description: 'The signature.' },
          },
        },
        response: {
          200: { description: 'The file (gzip CSV or Parquet), with Content-Length.' },
          ...errorResponses([403, 404]),
        },
      },
    },
    async (request, reply) => {
      const check = checkDownload(
        options.signingSecret(),
        request.params.artifactId,
        queryParam(request.query, 'expires'),
        queryParam(request.query, 'sig'),
        Date.now(),
      )
      if (check === 'invalid')
        throw new ApiError(
          'permission_denied',
          'Download link is invalid: its signature does not match',
        )
      if (check === 'expired')
        throw new ApiError(
          'permission_denied',
          'Download link has expired; ask GET /v1/exports/{id}/download for a new one',
        )
      const artifact = await findArtifact(db, request.params.artifactId)
      const file =
        artifact === undefined ? undefined : await options.store.open(artifact.storageKey)
      if (artifact === undefined || file === undefined)
        throw new ApiError('not_found', `Artifact ${request.params.artifactId} not found`)
      return reply
        .type(
          artifact.filename.endsWith('.parquet')
            ? 'application/vnd.apache.parquet'
            : 'application/gzip',
        )
        .header('content-length', String(file.bytes))
        .header('content-disposition', `attachment; filename="${artifact.filename}"`)
        .header('cache-control', 'private, no-store')
        .send(file.stream)
    },
  )
}

function originOf(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`
}
