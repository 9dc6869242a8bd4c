import { parseArgs } from 'node:util'
import { CHECKS } from '../checks/index.js'
import type { ConformanceOptions } from '../run-conformance.js'
import type { SlowMode } from '../slow-mode.js'

/** A command line the command cannot run: exit code 2 and the usage. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
  readonly code = 'usage'
}

export type Command =
  | { readonly kind: 'help' }
  | { readonly kind: 'version' }
  | { readonly kind: 'list' }
  | {
      readonly kind: 'run'
      readonly options: Omit<ConformanceOptions, 'onResult'>
      readonly json: boolean
      readonly failOnNotRun: boolean
    }

export const USAGE = `Usage: ticksupply-conformance --base-url URL --api-key KEY [options]

Checks a running Ticksupply API server against the idempotency contract, using only its
documented endpoints. Creates subscriptions and export schemas in the account, and deletes them
again at the end.

Options:
  --base-url URL            the server, e.g. http://127.0.0.1:8080 (required)
  --api-key KEY             an API key of the account to work in (required)
  --other-account-key KEY   an API key of another account (the scope checks)
  --same-account-key KEY    a second API key of the first account (the shared-keys check)
  --slow-header NAME        a request header the server honours by sleeping its value in ms
                            once it has claimed the key (the waiting checks)
  --server-delay-ms N       the server takes N ms for every operation, e.g. the Ticksupply
                            server started with TICKSUPPLY_TEST_HANDLER_DELAY_MS=N (the waiting
                            checks; use with --only waiting,exit)
  --wait-ms N               the wait the contract describes, to time the waiting checks
                            (default 3000)
  --concurrency N           requests at once in the concurrency checks, 2 to 32 (default 8)
  --only LIST               comma-separated check ids or groups, e.g. key,replay.fidelity
  --timeout-ms N            per request (default 30000)
  --json                    print the report as JSON
  --fail-on-not-run         exit 1 when a check could not run
  --list                    list the checks and exit
  --version, --help

Exit codes: 0 every check that ran passed; 1 a check failed; 2 a usage error, or the server
could not be tested at all (unreachable, key refused).
`

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const RESERVED_HEADERS = new Set([
  'idempotency-key',
  'x-api-key',
  'content-type',
  'content-length',
  'host',
])

function integer(
  name: string,
  raw: string | undefined,
  min: number,
  max: number,
): number | undefined {
  if (raw === undefined) return undefined
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} must be a whole number, got "${raw}"`)
  const value = Number(raw)
  if (value < min || value > max) {
    throw new UsageError(`--${name} must be between ${String(min)} and ${String(max)}, got ${raw}`)
  }
  return value
}

function required(name: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`)
  return value
}

/** Parses the command line, or throws a {@link UsageError} naming what is wrong. */
export function parseCommand(argv: readonly string[]): Command {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        'base-url': { type: 'string' },
        'api-key': { type: 'string' },
        'other-account-key': { type: 'string' },
        'same-account-key': { type: 'string' },
        'slow-header': { type: 'string' },
        'server-delay-ms': { type: 'string' },
        'wait-ms': { type: 'string' },
        concurrency: { type: 'string' },
        only: { type: 'string' },
        'timeout-ms': { type: 'string' },
        json: { type: 'boolean' },
        'fail-on-not-run': { type: 'boolean' },
        list: { type: 'boolean' },
        version: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    })
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error))
  }
  const values = parsed.values
  if (values.help === true) return { kind: 'help' }
  if (values.version === true) return { kind: 'version' }
  if (values.list === true) return { kind: 'list' }

  const baseUrl = required('base-url', values['base-url'])
  let url: URL
  try {
    url = new URL(baseUrl)
  } catch {
    throw new UsageError(`--base-url must be a URL such as http://127.0.0.1:8080, got "${baseUrl}"`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--base-url must start with http:// or https://, got "${baseUrl}"`)
  }
  const apiKey = required('api-key', values['api-key'])

  const slowHeader = values['slow-header']
  const serverDelayMs = integer('server-delay-ms', values['server-delay-ms'], 1, 60_000)
  if (slowHeader !== undefined && serverDelayMs !== undefined) {
    throw new UsageError('give --slow-header or --server-delay-ms, not both')
  }
  let slow: SlowMode = { kind: 'none' }
  if (slowHeader !== undefined) {
    if (!HEADER_NAME.test(slowHeader) || RESERVED_HEADERS.has(slowHeader.toLowerCase())) {
      throw new UsageError(
        `--slow-header must be a header name of the server's own, got "${slowHeader}"`,
      )
    }
    slow = { kind: 'header', name: slowHeader }
  } else if (serverDelayMs !== undefined) {
    slow = { kind: 'server', delayMs: serverDelayMs }
  }

  let only: string[] | undefined
  if (values.only !== undefined) {
    only = values.only
      .split(',')
      .map((entry) => entry.trim())
      .filter((entry) => entry !== '')
    const unknown = only.filter(
      (entry) => !CHECKS.some((check) => check.id === entry || check.id.startsWith(`${entry}.`)),
    )
    if (unknown.length > 0 || only.length === 0) {
      throw new UsageError(
        `--only names no check: ${unknown.join(', ') || '(empty)'}; see --list for the ids`,
      )
    }
  }
  const optional = <K extends string, V>(key: K, value: V | undefined) =>
    (value === undefined ? {} : { [key]: value }) as Partial<Record<K, V>>

  return {
    kind: 'run',
    json: values.json === true,
    failOnNotRun: values['fail-on-not-run'] === true,
    options: {
      baseUrl,
      apiKey,
      slow,
      ...optional('otherAccountKey', values['other-account-key']),
      ...optional('sameAccountKey', values['same-account-key']),
      ...optional('waitMs', integer('wait-ms', values['wait-ms'], 0, 60_000)),
      ...optional('concurrency', integer('concurrency', values.concurrency, 2, 32)),
      ...optional('timeoutMs', integer('timeout-ms', values['timeout-ms'], 100, 600_000)),
      ...optional('only', only),
    },
  }
}
