import type { FastifyInstance } from 'fastify'
import type { ServerConfig } from '../../config.js'
import type { Database } from '../../db/database.js'
import { createArtifactCleanup } from '../../domain/exports/artifact-cleanup.js'
import { createLocalArtifactStore } from '../../domain/exports/artifact-store.js'
import type { ArtifactStore } from '../../domain/exports/artifact-store.js'
import { loadSigningSecret } from '../../domain/exports/download-links.js'
import type { ExportWorker } from '../../domain/exports/export-worker.js'
import { createExportWorker } from '../../domain/exports/export-worker.js'
import type { RecorderSource } from '../../domain/exports/recorder-source.js'
import { createSyntheticRecorderSource } from '../../domain/exports/recorder-source.js'
import { parseJsonKeepingInt64 } from '../../domain/json-int64.js'
import { registerJsonBody } from '../../http/json-body.js'
import { registerDownloadRoutes } from './download-routes.js'
import { registerExportRoutes } from './export-routes.js'
import { registerExportSchemaRoutes } from './export-schema-routes.js'

/** What exports run on; the defaults are the server's own. */
export interface ExportParts {
  /** Where files live. @default the local folder `ARTIFACTS_DIR` */
  readonly store?: ArtifactStore
  /** Where recorded messages come from. @default the synthetic source */
  readonly source?: RecorderSource
}

/**
 * Exports in one place: the export schemas, the jobs, the download links and their files, the
 * worker that produces the files and the cleanup that removes them. Registers the routes and
 * answers the worker (with the cleanup), which the caller starts once the server listens and
 * stops before closing.
 */
export async function setUpExports(
  server: FastifyInstance,
  db: Database,
  config: ServerConfig,
  bodyLimit: number,
  parts: ExportParts = {},
): Promise<ExportWorker> {
  const settings = config.exports
  const store = parts.store ?? createLocalArtifactStore(settings.artifactsDir)
  const secret = await loadSigningSecret(db, settings.signingSecret, Date.now())
  const onError = (error: unknown, message: string): void => {
    server.log.error({ err: error }, message)
  }
  const worker = createExportWorker({
    db,
    store,
    source: parts.source ?? createSyntheticRecorderSource(),
    pollMs: settings.pollMs,
    leaseMs: settings.leaseMs,
    testDelayMs: settings.testDelayMs,
    onError,
  })
  const cleanup = createArtifactCleanup({ store, onError })
  const mutation = {
    delayMs: config.testHandlerDelayMs,
    crashAfterCommit: config.testExitAfterCommit,
  }
  registerExportSchemaRoutes(server, db, mutation)
  // Jobs and downloads live in their own encapsulated scope for one reason: its JSON parser
  // keeps integers past 2^53 exact (nanosecond times).
  void server.register((scope, _options, done) => {
    registerJsonBody(scope, bodyLimit, parseJsonKeepingInt64)
    registerExportRoutes(scope, db, {
      mutation,
      cleanup,
      onQueued: () => {
        worker.wake()
      },
      signingSecret: () => secret,
      downloadUrlTtlS: settings.downloadUrlTtlS,
      publicBaseUrl: settings.publicBaseUrl,
    })
    registerDownloadRoutes(scope, db, { store, signingSecret: () => secret })
    done()
  })
  return {
    start: () => {
      worker.start()
    },
    async stop() {
      cleanup.stop()
      await worker.stop()
    },
    wake: () => {
      worker.wake()
    },
  }
}
