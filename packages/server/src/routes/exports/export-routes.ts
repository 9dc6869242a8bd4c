import type { FastifyInstance } from 'fastify'
import type { Database } from '../../db/database.js'
import type { ArtifactCleanup } from '../../domain/exports/artifact-cleanup.js'
import { parseCreateExportBody } from '../../domain/exports/create-export-request.js'
import { downloadPath } from '../../domain/exports/download-links.js'
import {
  cancelExport,
  createExport,
  deleteExport,
  exportPrefix,
  getExport,
  listArtifacts,
  listExports,
} from '../../domain/exports/export-jobs.js'
import { accountOf } from '../../http/auth.js'
import type { MutationOptions } from '../../http/mutation.js'
import { runMutation } from '../../http/mutation.js'
import { parsePageQuery, renderPage } from '../../http/pagination.js'
import { parseBodyOnce } from '../../http/parse-body-once.js'
import { queryParam } from '../../http/query.js'
import { requestOrigin } from '../../http/request-origin.js'
import {
  addComponentSchemas,
  errorResponses,
  idParams,
  noContent,
  pageOf,
  pageQuery,
  ref,
} from '../../http/schemas.js'
import { renderJson, sendJson } from '../../http/send-json.js'
import {
  CREATE_EXPORT_BODY,
  EXPORT_DOWNLOAD_SCHEMA,
  EXPORT_JOB_SCHEMA,
  EXPORT_SCHEMAS,
} from '../schemas/exports.js'

const EXPORT_PAGE = { defaultLimit: 50, maxLimit: 100 }

export interface ExportRouteOptions {
  readonly mutation: MutationOptions
  /** Removes the files of a deleted export after its commit, retrying on its own. */
  readonly cleanup: ArtifactCleanup
  /** Wakes the export worker when a job was queued. */
  readonly onQueued: () => void
  readonly signingSecret: () => string
  readonly downloadUrlTtlS: number
  /** The base of download links; the request's own origin when undefined. */
  readonly publicBaseUrl: string | undefined
}

type IdParams = { Params: { id: string } }

const TAGS = ['Exports']
const params = idParams('An export id (`exp_...`); a malformed or unknown one is a 404.')
const createBody = parseBodyOnce(parseCreateExportBody)

/** Export jobs: create, read, cancel, delete, and the signed links to their files. */
export function registerExportRoutes(
  app: FastifyInstance,
  db: Database,
  options: ExportRouteOptions,
): void {
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
        documentedBody: { schema: CREATE_EXPORT_BODY },
        response: {
          202: ref(EXPORT_JOB_SCHEMA.$id, 'The job, `queued`.'),
          ...errorResponses([400, 402, 403, 404, 409]),
        },
      },
      preValidation: createBody.preValidation,
    },
    async (request, reply) => {
      const payload = await runMutation(db, request, reply, mutation, async (tx, now) => ({
        status: 202,
        bodyText: renderJson(
          await createExport(tx, accountOf(request), createBody.of(request), now),
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
      return sendJson(reply, renderPage(page, paging.limit))
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
      sendJson(reply, await getExport(db, accountOf(request), request.params.id)),
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
      // The job is gone and the 204 is committed (and stored for replay): nothing after this
      // point may change the answer. The files follow; a failure is logged and retried in the
      // background, and should this process die first, the worker's sweep at the next start
      // removes the folder.
      await options.cleanup.remove(exportPrefix(request.params.id))
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
      const base = options.publicBaseUrl ?? requestOrigin(request)
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
}
