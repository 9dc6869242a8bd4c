import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { buildApp } from './app.js'
import type { ServerConfig } from './config.js'
import { ConfigError, DEFAULT_DATABASE_URL, describeDatabase, loadConfig } from './config.js'

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
    stopAtStart(
      errorCode(error) === 'store_owned'
        ? messageOf(error)
        : `cannot open the database of DATABASE_URL (${describeDatabase(config.database)}): ${messageOf(error)}`,
    )
  }
  if (config.production && config.exports.publicBaseUrl === undefined) {
    app.server.log.warn(
      "PUBLIC_BASE_URL is unset: download links take their origin from each request's Host header, which the client chooses. Set it to the public origin, e.g. https://api.example.com",
    )
  }
  let url
  try {
    url = await app.listen()
  } catch (error) {
    stopAtStart(listenFailure(error, config))
  }
  process.stdout.write(
    [
      `Ticksupply API listening on ${url} (database: ${app.databaseDescription})`,
      `Create an API key:  ${keysCommandFor(config)}`,
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

/**
 * A server that cannot start says why in one line naming the setting, and exits with 2, as for
 * a bad value: a stack trace of a port in use or of a file that is not a database is no help.
 */
function stopAtStart(message: string): never {
  process.stderr.write(`ticksupply: ${message}\n`)
  process.exit(2)
}

function listenFailure(error: unknown, config: ServerConfig): string {
  const where = `${config.host}:${String(config.port)}`
  switch (errorCode(error)) {
    case 'EADDRINUSE':
      return `cannot listen on ${where}: PORT ${String(config.port)} is in use by another process`
    case 'EACCES':
      return `cannot listen on ${where}: not allowed to use PORT ${String(config.port)} (ports below 1024 need privileges)`
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${where}: HOST ${config.host} is not an address of this machine`
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot listen on ${where}: HOST ${config.host} does not resolve to an address`
    default:
      return `cannot listen on ${where} (HOST, PORT): ${messageOf(error)}`
  }
}

function errorCode(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * The key command for this server's database: the keys CLI reads `DATABASE_URL` as the server
 * does, so a server on another database than the default needs it said (a key made in the
 * default file is unknown to it). A PostgreSQL URL is not printed: it may hold a password.
 */
function keysCommandFor(config: ServerConfig): string {
  const command = 'npm run keys -- create --account <name>'
  const given = process.env['DATABASE_URL']
  const isDefault = given === undefined || given === '' || given === DEFAULT_DATABASE_URL
  // npm runs the keys script in the project's folder: the default's relative path means the
  // same file there only when the server runs in that folder too.
  if (isDefault && existsSync('package.json')) return command
  if (config.database.kind === 'postgres') return `DATABASE_URL=<this server's> ${command}`
  if (config.database.filename === ':memory:') return command
  return `DATABASE_URL=${shellQuoted(`sqlite:${resolve(config.database.filename)}`)} ${command}`
}

function shellQuoted(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`
}

await main()
