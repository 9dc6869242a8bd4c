import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'

/** After the grace period and the aborted operations' settling, the stores get this long to close. */
const HARD_STOP_AFTER_GRACE_MS = 5_000

async function main(): Promise<void> {
  let config
  try {
    config = loadConfig(process.env)
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`ticksupply: ${error.message}\n`)
      process.exit(2)
    }
    throw error
  }
  let app
  try {
    app = await buildApp(config)
  } catch (error) {
    // Another process owns the SQLite file: a clear line, not a stack trace.
    if ((error as { code?: unknown } | null)?.code === 'store_owned') {
      process.stderr.write(`ticksupply: ${(error as Error).message}\n`)
      process.exit(2)
    }
    throw error
  }
  if (config.production && config.exports.publicBaseUrl === undefined) {
    app.server.log.warn(
      "PUBLIC_BASE_URL is unset: download links take their origin from each request's Host header, which the client chooses. Set it to the public origin, e.g. https://api.example.com",
    )
  }
  const url = await app.listen()
  process.stdout.write(
    [
      `Ticksupply API listening on ${url} (database: ${app.databaseDescription})`,
      `Create an API key:  npm run keys -- create --account <name>`,
      `Then try:           curl -H 'X-Api-Key: <key>' ${url}/v1/exchanges`,
      '',
    ].join('\n'),
  )
  let stopping = false
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) {
        // A second signal: the operator does not want to wait for the grace period.
        app.server.log.warn(`${signal} again: exiting now`)
        process.exit(1)
      }
      stopping = true
      app.server.log.info(
        `${signal}: shutting down (grace period ${String(config.shutdownGraceMs)} ms)`,
      )
      // Whatever hangs (a database that does not answer), the process ends.
      setTimeout(() => {
        process.stderr.write('ticksupply: shutdown did not finish in time; exiting\n')
        process.exit(1)
      }, config.shutdownGraceMs + HARD_STOP_AFTER_GRACE_MS).unref()
      app.close().then(
        (report) => {
          app.server.log.info(report, 'shutdown complete')
          process.exit(0)
        },
        (error: unknown) => {
          app.server.log.error({ err: error }, 'shutdown failed')
          process.exit(1)
        },
      )
    })
  }
}

await main()
