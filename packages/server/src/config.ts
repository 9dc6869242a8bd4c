import { isIP } from 'node:net'
import { dirname, join } from 'node:path'

/** A parsed `DATABASE_URL`. */
export type DatabaseLocation =
  | { readonly kind: 'sqlite'; readonly filename: string }
  | { readonly kind: 'postgres'; readonly url: string }

export interface ServerConfig {
  readonly host: string
  readonly port: number
  readonly database: DatabaseLocation
  /** `account:apikey` pairs ensured at start. */
  readonly apiKeys: readonly { readonly account: string; readonly apiKey: string }[]
  readonly idempotencyTtlMs: number
  readonly idempotencyWaitMs: number
  readonly idempotencyLeaseMs: number
  /** First poll delay of a waiting duplicate (it doubles each time; a completion wakes it). */
  readonly idempotencyPollMs: number
  /** Time between runs of the purger of expired idempotency records. */
  readonly idempotencyPurgeIntervalMs: number
  /**
   * On SIGTERM or SIGINT, how long requests in flight may take to finish before their
   * operations are aborted (rolled back, their keys released) and the process exits.
   */
  readonly shutdownGraceMs: number
  /** The server's deadline per request. */
  readonly requestDeadlineMs: number
  /** Token-bucket size and refill per minute, per account (`RATE_LIMIT_PER_MINUTE`). */
  readonly rateLimitPerMinute: number
  /** Token-bucket size and refill per hour, per account (`RATE_LIMIT_PER_HOUR`). */
  readonly rateLimitPerHour: number
  /** Fault injection: every mutating operation sleeps this long once its key is claimed. */
  readonly testHandlerDelayMs: number
  /** Fault injection: the process exits right after a mutating operation commits. */
  readonly testExitAfterCommit: boolean
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'silent'
  readonly production: boolean
  /** The export worker, artifact storage and download links. */
  readonly exports: ExportConfig
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

type Env = Readonly<Record<string, string | undefined>>

/** The one reader of the environment: parses every setting or throws a {@link ConfigError}. */
export function loadConfig(env: Env): ServerConfig {
  const production = env['NODE_ENV'] === 'production'
  const testHandlerDelayMs = integer(env, 'TICKSUPPLY_TEST_HANDLER_DELAY_MS', 0, 0, 600_000)
  const testExitAfterCommit = flag(env, 'TICKSUPPLY_TEST_EXIT_AFTER_COMMIT')
  if (production && (testHandlerDelayMs > 0 || testExitAfterCommit)) {
    throw new ConfigError(
      'TICKSUPPLY_TEST_* fault injection settings are refused when NODE_ENV=production',
    )
  }
  const leaseDefault = 30_000
  const idempotencyLeaseMs = integer(env, 'IDEMPOTENCY_LEASE_MS', leaseDefault, 100, 3_600_000)
  const idempotencyTtlMs = integer(env, 'IDEMPOTENCY_TTL_SECONDS', 86_400, 1, 365 * 86_400) * 1000
  const requestDeadlineMs = integer(env, 'REQUEST_DEADLINE_MS', 10_000, 100, 600_000)
  // A record must outlive every claim on it: a live holder's ends by the request deadline, a
  // dead holder's when its lease lapses. A shorter TTL lets a record complete already expired,
  // and the next retry runs the operation again (docs/decisions/0308).
  if (idempotencyTtlMs <= Math.max(idempotencyLeaseMs, requestDeadlineMs)) {
    throw new ConfigError(
      `IDEMPOTENCY_TTL_SECONDS (${String(idempotencyTtlMs / 1000)} s) must exceed both IDEMPOTENCY_LEASE_MS (${String(idempotencyLeaseMs)} ms) and REQUEST_DEADLINE_MS (${String(requestDeadlineMs)} ms)`,
    )
  }
  const database = parseDatabaseUrl(nonEmpty(env['DATABASE_URL']) ?? DEFAULT_DATABASE_URL)
  return {
    host: parseHost(env['HOST']),
    port: integer(env, 'PORT', 8080, 0, 65_535),
    database,
    apiKeys: parseApiKeys(env['API_KEYS'] ?? ''),
    idempotencyTtlMs,
    idempotencyWaitMs: integer(env, 'IDEMPOTENCY_WAIT_MS', 3_000, 0, 60_000),
    idempotencyLeaseMs,
    idempotencyPollMs: integer(env, 'IDEMPOTENCY_POLL_MS', 50, 1, 60_000),
    idempotencyPurgeIntervalMs: integer(
      env,
      'IDEMPOTENCY_PURGE_INTERVAL_MS',
      60_000,
      100,
      86_400_000,
    ),
    shutdownGraceMs: integer(env, 'SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
    requestDeadlineMs,
    rateLimitPerMinute: integer(env, 'RATE_LIMIT_PER_MINUTE', 200, 1, 1_000_000),
    rateLimitPerHour: integer(env, 'RATE_LIMIT_PER_HOUR', 10_000, 1, 100_000_000),
    testHandlerDelayMs,
    testExitAfterCommit,
    logLevel: oneOf(
      env,
      'LOG_LEVEL',
      ['fatal', 'error', 'warn', 'info', 'debug', 'silent'],
      'info',
    ),
    production,
    exports: parseExportConfig(env, production, database),
  }
}

/** An empty setting means its default, as for every other variable. */
function nonEmpty(raw: string | undefined): string | undefined {
  return raw === undefined || raw === '' ? undefined : raw
}

/** A DNS name (RFC 1123 labels; fully qualified, with a final dot, or not), without a port. */
const HOST_NAME =
  /^(?=.{1,254}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/

/**
 * The address to listen on. Empty is the default, loopback: Node would read an empty host as
 * every interface, which nobody who cleared the variable meant. `0.0.0.0` or `::` say that.
 */
function parseHost(raw: string | undefined): string {
  const host = nonEmpty(raw)
  if (host === undefined) return '127.0.0.1'
  if (isIP(host) !== 0 || HOST_NAME.test(host)) return host
  throw new ConfigError(
    `HOST must be an IP address or a host name (e.g. 127.0.0.1, 0.0.0.0, ::, localhost), got "${host}"`,
  )
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  if (!/^\d+$/.test(raw.trim()))
    throw new ConfigError(`${name} must be a whole number, got "${raw}"`)
  const value = Number(raw.trim())
  if (value < min || value > max) {
    throw new ConfigError(`${name} must be between ${String(min)} and ${String(max)}, got ${raw}`)
  }
  return value
}

function flag(env: Env, name: string): boolean {
  const raw = env[name]
  if (raw === undefined || raw === '' || raw === '0' || raw === 'false') return false
  if (raw === '1' || raw === 'true') return true
  throw new ConfigError(`${name} must be 1, true, 0 or false, got "${raw}"`)
}

function oneOf<T extends string>(env: Env, name: string, values: readonly T[], fallback: T): T {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const found = values.find((value) => value === raw)
  if (found === undefined)
    throw new ConfigError(`${name} must be one of ${values.join(', ')}, got "${raw}"`)
  return found
}

export function parseDatabaseUrl(url: string): DatabaseLocation {
  if (url.startsWith('sqlite:')) {
    const filename = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '')
    if (filename === '')
      throw new ConfigError(
        'DATABASE_URL sqlite: needs a file path, e.g. sqlite:./data/ticksupply.db',
      )
    return { kind: 'sqlite', filename }
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    try {
      new URL(url)
    } catch {
      throw new ConfigError(`DATABASE_URL is not a valid URL: "${url}"`)
    }
    return { kind: 'postgres', url }
  }
  throw new ConfigError(`DATABASE_URL must start with sqlite: or postgres://, got "${url}"`)
}

/** The location as logs and messages show it: a PostgreSQL URL without its password. */
export function describeDatabase(location: DatabaseLocation): string {
  if (location.kind === 'sqlite') return location.filename
  const url = new URL(location.url)
  url.password = ''
  return url.toString()
}

const ACCOUNT_NAME = /^[A-Za-z0-9_.-]{1,64}$/
const API_KEY = /^[\x21-\x7e]{16,256}$/

function parseApiKeys(raw: string): ServerConfig['apiKeys'] {
  const pairs: { account: string; apiKey: string }[] = []
  for (const entry of raw
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')) {
    const colon = entry.indexOf(':')
    const account = entry.slice(0, colon)
    const apiKey = entry.slice(colon + 1)
    if (colon <= 0 || !ACCOUNT_NAME.test(account)) {
      throw new ConfigError(
        `API_KEYS entries must be account:apikey with an account name of letters, digits, _ . -; got "${entry}"`,
      )
    }
    if (!API_KEY.test(apiKey)) {
      throw new ConfigError(
        `API_KEYS: the key of account "${account}" must be 16 to 256 printable characters without spaces`,
      )
    }
    pairs.push({ account, apiKey })
  }
  return pairs
}

export interface ExportConfig {
  /** How often an idle export worker looks for queued jobs (`EXPORT_POLL_MS`). */
  readonly pollMs: number
  /** How long a worker's claim on a job lasts unless renewed (`EXPORT_LEASE_MS`). */
  readonly leaseMs: number
  /** Where export files are stored (`ARTIFACTS_DIR`; default: `artifacts` beside the SQLite file). */
  readonly artifactsDir: string
  /** The download-link signing secret (`DOWNLOAD_SIGNING_SECRET`); undefined: one kept in the database. */
  readonly signingSecret: string | undefined
  /** How long a download link works (`DOWNLOAD_URL_TTL_SECONDS`). */
  readonly downloadUrlTtlS: number
  /** The origin download links start with (`PUBLIC_BASE_URL`); undefined: the request's own. */
  readonly publicBaseUrl: string | undefined
  /** Fault injection: an export waits this long between writing its files and committing them. */
  readonly testDelayMs: number
}

/** Where the embedded SQLite database lives unless `DATABASE_URL` says otherwise. */
export const DEFAULT_DATABASE_URL = 'sqlite:./data/ticksupply.db'

function parseExportConfig(
  env: Env,
  production: boolean,
  database: DatabaseLocation,
): ExportConfig {
  const testDelayMs = integer(env, 'TICKSUPPLY_TEST_EXPORT_DELAY_MS', 0, 0, 600_000)
  if (production && testDelayMs > 0)
    throw new ConfigError(
      'TICKSUPPLY_TEST_* fault injection settings are refused when NODE_ENV=production',
    )
  const secret = env['DOWNLOAD_SIGNING_SECRET']
  if (secret !== undefined && secret !== '' && secret.length < 32)
    throw new ConfigError('DOWNLOAD_SIGNING_SECRET must be at least 32 characters')
  const publicBaseUrl = env['PUBLIC_BASE_URL']
  if (
    publicBaseUrl !== undefined &&
    publicBaseUrl !== '' &&
    !/^https?:\/\/[^/\s]+$/.test(publicBaseUrl)
  )
    throw new ConfigError(
      `PUBLIC_BASE_URL must be an origin such as https://api.example.com, got "${publicBaseUrl}"`,
    )
  const besideDatabase =
    database.kind === 'sqlite' && database.filename !== ':memory:'
      ? join(dirname(database.filename), 'artifacts')
      : './data/artifacts'
  const artifactsDir = env['ARTIFACTS_DIR']
  return {
    pollMs: integer(env, 'EXPORT_POLL_MS', 500, 10, 600_000),
    leaseMs: integer(env, 'EXPORT_LEASE_MS', 30_000, 300, 3_600_000),
    artifactsDir: artifactsDir === undefined || artifactsDir === '' ? besideDatabase : artifactsDir,
    signingSecret: secret === undefined || secret === '' ? undefined : secret,
    downloadUrlTtlS: integer(env, 'DOWNLOAD_URL_TTL_SECONDS', 3_600, 1, 7 * 86_400),
    publicBaseUrl: publicBaseUrl === undefined || publicBaseUrl === '' ? undefined : publicBaseUrl,
    testDelayMs,
  }
}
