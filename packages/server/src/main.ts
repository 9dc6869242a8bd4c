import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'

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
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      app.close().then(
        () => process.exit(0),
        () => process.exit(1),
      )
    })
  }
}

await main()
