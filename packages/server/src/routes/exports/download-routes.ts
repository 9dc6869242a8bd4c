import type { FastifyInstance } from 'fastify'
import type { Database } from '../../db/database.js'
import { ApiError } from '../../domain/api-error.js'
import type { ArtifactStore } from '../../domain/exports/artifact-store.js'
import { checkDownload } from '../../domain/exports/download-links.js'
import { findArtifact } from '../../domain/exports/export-jobs.js'
import { parseByteRange } from '../../http/byte-range.js'
import { JSON_TYPE, renderError } from '../../http/envelope.js'
import { queryParam } from '../../http/query.js'
import { exactErrorResponses } from '../../http/schemas.js'

export interface DownloadRouteOptions {
  readonly store: ArtifactStore
  readonly signingSecret: () => string
}

const GZIP = 'application/gzip'
const PARQUET = 'application/vnd.apache.parquet'

/** A file's bytes in the document: one schema under each content type a file can have. */
const FILE_CONTENT = {
  [GZIP]: { schema: { type: 'string', format: 'binary', description: 'A gzip CSV file.' } },
  [PARQUET]: { schema: { type: 'string', format: 'binary', description: 'A Parquet file.' } },
}

const DOWNLOAD_ERRORS = exactErrorResponses([403, 404, 408, 416, 500, 503])
DOWNLOAD_ERRORS[416] = {
  ...DOWNLOAD_ERRORS[416],
  headers: { 'Content-Range': { type: 'string', description: '`bytes */{size}`.' } },
}

// Response headers as @fastify/swagger takes them: a schema per header, its description inside.
const FILE_HEADERS = {
  'Accept-Ranges': {
    type: 'string',
    enum: ['bytes'],
    description: '`bytes`: a `Range` request resumes a download.',
  },
  'Content-Length': { type: 'integer', minimum: 0, description: 'The bytes of this answer.' },
  ETag: {
    type: 'string',
    description: 'The file never changes: its artifact id, for `If-Range`.',
  },
}

/**
 * The signed links' target. The link is the credential: no API key, so it lives outside `/v1`
 * (no authentication, no rate limit). A `Range` header resumes a download: one range is a 206,
 * a range past the end a 416.
 */
export function registerDownloadRoutes(
  app: FastifyInstance,
  db: Database,
  options: DownloadRouteOptions,
): void {
  app.get<{ Params: { artifactId: string }; Querystring: Record<string, unknown> }>(
    '/downloads/:artifactId',
    {
      schema: {
        operationId: 'downloadArtifact',
        summary: 'Download an export file',
        description:
          'The signed link from `GET /v1/exports/{id}/download`; no API key. Invalid or expired: 403; deleted: 404. `Range: bytes=N-` resumes (206); a range that starts past the end is a 416.',
        tags: ['Exports'],
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
            expires: {
              type: 'integer',
              minimum: 0,
              maximum: 999_999_999_999,
              description: 'Unix seconds when the link stops working.',
            },
            sig: { type: 'string', description: 'The signature.' },
          },
        },
        headers: {
          type: 'object',
          properties: {
            Range: {
              type: 'string',
              description:
                'One byte range, e.g. `bytes=1048576-`; several ranges get the whole file.',
            },
            'If-Range': {
              type: 'string',
              description: 'The `ETag` of the first part: a range only while the file is the same.',
            },
          },
        },
        response: {
          200: { description: 'The whole file.', headers: FILE_HEADERS, content: FILE_CONTENT },
          206: {
            description: 'The requested range of the file.',
            headers: {
              ...FILE_HEADERS,
              'Content-Range': { type: 'string', description: '`bytes {first}-{last}/{size}`.' },
            },
            content: FILE_CONTENT,
          },
          ...DOWNLOAD_ERRORS,
        },
      },
    },
    async (request, reply) => {
      const { artifactId } = request.params
      const check = checkDownload(
        options.signingSecret(),
        artifactId,
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
      const artifact = await findArtifact(db, artifactId)
      const file =
        artifact === undefined ? undefined : await options.store.open(artifact.storageKey)
      if (artifact === undefined || file === undefined)
        throw new ApiError('not_found', `Artifact ${artifactId} not found`)
      // An artifact's bytes never change (a new export is new artifacts), so its id is a strong
      // validator.
      const etag = `"${artifact.id}"`
      reply
        .type(artifact.filename.endsWith('.parquet') ? PARQUET : GZIP)
        .header('accept-ranges', 'bytes')
        .header('etag', etag)
        .header('content-disposition', `attachment; filename="${artifact.filename}"`)
        .header('cache-control', 'private, no-store')
      const header = request.headers.range
      const ifRange = request.headers['if-range']
      const range = parseByteRange(
        typeof header === 'string' ? header : undefined,
        file.bytes,
        typeof ifRange === 'string' ? ifRange : undefined,
        etag,
      )
      if (range.kind === 'unsatisfiable') {
        return reply
          .code(416)
          .header('content-range', `bytes */${String(file.bytes)}`)
          .type(JSON_TYPE)
          .send(
            renderError(
              'invalid_argument',
              `Range not satisfiable: the file has ${String(file.bytes)} bytes`,
            ),
          )
      }
      if (range.kind === 'whole') {
        return reply.header('content-length', String(file.bytes)).send(file.read())
      }
      return reply
        .code(206)
        .header(
          'content-range',
          `bytes ${String(range.start)}-${String(range.end)}/${String(file.bytes)}`,
        )
        .header('content-length', String(range.end - range.start + 1))
        .send(file.read(range))
    },
  )
}
