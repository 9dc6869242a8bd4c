import type { FastifyInstance } from 'fastify'
import type { ServerConfig } from '../config.js'
import type { Database } from '../db/database.js'
import { registerExportRoutes } from '../routes/exports.js'
import { createLocalArtifactStore } from './artifact-store.js'
import { loadSigningSecret } from './download-links.js'
import type { ExportWorker } from './export-worker.js'
import { createExportWorker } from './export-worker.js'
import type { RecorderSource } from './recorder-source.js'
import { createSyntheticRecorderSource } from './recorder-source.js'

/**
 * Wires exports into the server: the artifact store, the signing secret, the routes and the
 * worker. The caller starts the worker once the server listens and stops it before closing.
 */
export async function setUpExports(
  server: FastifyInstance,
  db: Database,
  config: ServerConfig,
  bodyLimit: number,
  source: RecorderSource = createSyntheticRecorderSource(),
): Promise<ExportWorker> {
  const settings = config.exports
  const store = createLocalArtifactStore(settings.artifactsDir)
  const secret = await loadSigningSecret(db, settings.signingSecret, Date.now())
  const worker = createExportWorker({
    db,
    store,
    source,
    pollMs: settings.pollMs,
    leaseMs: settings.leaseMs,
    testDelayMs: settings.testDelayMs,
    onError: (error, message) => {
      server.log.error({ err: error }, message)
    },
  })
  registerExportRoutes(server, db, {
    mutation: { delayMs: config.testHandlerDelayMs, crashAfterCommit: config.testExitAfterCommit },
    store,
    onQueued: () => {
      worker.wake()
    },
    signingSecret: () => secret,
    downloadUrlTtlS: settings.downloadUrlTtlS,
    publicBaseUrl: settings.publicBaseUrl,
    bodyLimit,
  })
  return worker
}
