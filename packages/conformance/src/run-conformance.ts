import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { AccountClient } from './api/account-client.js'
import { createAccountClient } from './api/account-client.js'
import { describeReply } from './api/describe-reply.js'
import { listDatastreamIds, listSubscriptions } from './api/ticksupply-api.js'
import type { Check, CheckContext, Requirement } from './checks/check.js'
import { CHECKS, selects } from './checks/index.js'
import { CheckNotRun, ExpectationFailed } from './expectation.js'
import { createHttpClient } from './http/http-client.js'
import type { SlowMode } from './slow-mode.js'
import { describeSlowMode } from './slow-mode.js'
import { VERSION } from './version.js'

export interface ConformanceOptions {
  /** The server under test, e.g. `http://127.0.0.1:8080`. */
  readonly baseUrl: string
  /** An API key of the account the suite works in. */
  readonly apiKey: string
  /** An API key of another account, for the scope checks. */
  readonly otherAccountKey?: string
  /** A second API key of the first account, for the shared-keys check. */
  readonly sameAccountKey?: string
  /** @default { kind: 'none' } */
  readonly slow?: SlowMode
  /**
   * The wait the contract describes ("about 3 seconds"), used to time the waiting checks.
   * @default 3000
   */
  readonly waitMs?: number
  /**
   * Requests at once in the concurrency checks (and the most connections ever open).
   * @default 8
   */
  readonly concurrency?: number
  /** Check ids or groups to run; all when absent. */
  readonly only?: readonly string[]
  /**
   * Per request.
   * @default 30000
   */
  readonly timeoutMs?: number
  /** Called as each check ends, for progress output. */
  readonly onResult?: (result: CheckResult) => void
}

export type CheckStatus = 'passed' | 'failed' | 'not_run'

export interface CheckResult {
  readonly id: string
  readonly title: string
  readonly clause: string
  readonly status: CheckStatus
  /** What the check expected, when it failed. */
  readonly expected?: string
  /** What came back instead, when it failed. */
  readonly actual?: string
  /** Why the check did not run. */
  readonly reason?: string
  readonly durationMs: number
}

export interface ConformanceReport {
  readonly tool: 'ticksupply-conformance'
  readonly version: string
  readonly baseUrl: string
  readonly startedAt: string
  readonly durationMs: number
  readonly slowMode: string
  readonly summary: { readonly passed: number; readonly failed: number; readonly notRun: number }
  readonly checks: readonly CheckResult[]
  /** Every request the suite sent, set-up, clean-up and retries after a 429 included. */
  readonly requests: number
  readonly cleanup: {
    readonly deletedSubscriptions: number
    readonly deletedExportSchemas: number
    /** What could not be cleaned up, in words. */
    readonly problems: readonly string[]
  }
}

/** The target cannot be tested at all: unreachable, or the API key is refused. */
export class TargetUnusableError extends Error {
  override readonly name = 'TargetUnusableError'
  readonly code = 'target_unusable'
}

/** One check may take this long (the slowest waits about 10 s). */
const CHECK_TIMEOUT_MS = 120_000
/** Clean-up requests at once. */
const CLEANUP_PARALLELISM = 4

const REQUIREMENT_REASONS: Record<Requirement, string> = {
  'other-account': 'needs an API key of another account: give --other-account-key',
  'same-account-key': 'needs a second API key of the same account: give --same-account-key',
  slow: 'needs a slow operation: give --slow-header NAME or --server-delay-ms N',
}

/** Runs the selected checks against the target, one after another, and cleans up after them. */
export async function runConformance(options: ConformanceOptions): Promise<ConformanceReport> {
  const started = performance.now()
  const startedAt = new Date().toISOString()
  const slow = options.slow ?? { kind: 'none' }
  const concurrency = options.concurrency ?? 8
  const http = createHttpClient({
    baseUrl: options.baseUrl,
    timeoutMs: options.timeoutMs ?? 30_000,
    maxSockets: concurrency,
    rateLimitBudgetMs: 120_000,
  })
  try {
    const account = createAccountClient(http, options.apiKey, "the account's key (--api-key)")
    const other =
      options.otherAccountKey === undefined
        ? undefined
        : createAccountClient(http, options.otherAccountKey, "the other account's key")
    const sameAccount =
      options.sameAccountKey === undefined
        ? undefined
        : createAccountClient(http, options.sameAccountKey, "the account's second key")
    const pool = await prepareDatastreams(account, other, sameAccount)
    const exportSchemas: { client: AccountClient; id: string }[] = []
    const runId = randomUUID().slice(0, 8)
    let names = 0

    const context: CheckContext = {
      account,
      otherAccount: other ?? account,
      sameAccountKey: sameAccount ?? account,
      slow,
      waitMs: options.waitMs ?? 3000,
      concurrency,
      takeDatastream: pool.take,
      unknownDatastreamId: pool.unknownId,
      trackExportSchema: (client, id) => exportSchemas.push({ client, id }),
      newKey: () => randomUUID(),
      uniqueName: () => `conformance_${runId}_${String(++names)}`,
    }
    const available: Record<Requirement, boolean> = {
      'other-account': other !== undefined,
      'same-account-key': sameAccount !== undefined,
      slow: slow.kind !== 'none',
    }
    const selected = CHECKS.filter(
      (check) => options.only === undefined || options.only.some((entry) => selects(entry, check)),
    )
    const results: CheckResult[] = []
    for (const check of selected) {
      const result = await runCheck(check, context, available)
      results.push(result)
      options.onResult?.(result)
    }
    const cleanup = await cleanUp(
      [account, ...(other === undefined ? [] : [other])],
      pool.handedOut,
      exportSchemas,
    )
    return {
      tool: 'ticksupply-conformance',
      version: VERSION,
      baseUrl: options.baseUrl,
      startedAt,
      durationMs: Math.round(performance.now() - started),
      slowMode: describeSlowMode(slow),
      summary: {
        passed: results.filter((result) => result.status === 'passed').length,
        failed: results.filter((result) => result.status === 'failed').length,
        notRun: results.filter((result) => result.status === 'not_run').length,
      },
      checks: results,
      requests: http.sent,
      cleanup,
    }
  } finally {
    http.close()
  }
}

async function runCheck(
  check: Check,
  context: CheckContext,
  available: Record<Requirement, boolean>,
): Promise<CheckResult> {
  const base = { id: check.id, title: check.title, clause: check.clause }
  const started = performance.now()
  const elapsed = () => Math.round(performance.now() - started)
  const missing = (check.requires ?? []).find((requirement) => !available[requirement])
  if (missing !== undefined) {
    return { ...base, status: 'not_run', reason: REQUIREMENT_REASONS[missing], durationMs: 0 }
  }
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      check.run(context),
      new Promise((_resolve, reject) => {
        timer = setTimeout(() => {
          reject(
            new ExpectationFailed(
              `the check to finish within ${String(CHECK_TIMEOUT_MS / 1000)} s`,
              'it did not',
            ),
          )
        }, CHECK_TIMEOUT_MS)
      }),
    ])
    return { ...base, status: 'passed', durationMs: elapsed() }
  } catch (error) {
    if (error instanceof CheckNotRun) {
      return { ...base, status: 'not_run', reason: error.reason, durationMs: elapsed() }
    }
    if (error instanceof ExpectationFailed) {
      return {
        ...base,
        status: 'failed',
        expected: error.expected,
        actual: error.actual,
        durationMs: elapsed(),
      }
    }
    return {
      ...base,
      status: 'failed',
      expected: 'the check to run to its end',
      actual: error instanceof Error ? error.message : String(error),
      durationMs: elapsed(),
    }
  } finally {
    clearTimeout(timer)
  }
}

interface DatastreamPool {
  readonly take: () => number
  readonly unknownId: number
  /** Every datastream handed out so far. */
  readonly handedOut: ReadonlySet<number>
}

/**
 * Checks that the keys work and finds the datastreams no account of the run subscribes to: the
 * suite subscribes only to those, so that it never touches the accounts' own subscriptions, and
 * deletes what it made there at the end.
 */
async function prepareDatastreams(
  account: AccountClient,
  other: AccountClient | undefined,
  sameAccount: AccountClient | undefined,
): Promise<DatastreamPool> {
  const preflight = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run()
    } catch (error) {
      const detail =
        error instanceof ExpectationFailed
          ? `expected ${error.expected}, got ${error.actual}`
          : String(error)
      throw new TargetUnusableError(`${what}: ${detail}`)
    }
  }
  const catalog = await preflight('cannot read the catalog', () => listDatastreamIds(account))
  const busy = new Set<number>()
  for (const [client, what] of [
    [account, 'the account'],
    [other, 'the other account'],
    [sameAccount, "the account's second key"],
  ] as const) {
    if (client === undefined) continue
    const subscriptions = await preflight(`cannot list the subscriptions of ${what}`, () =>
      listSubscriptions(client),
    )
    for (const subscription of subscriptions) busy.add(subscription.datastream_id)
  }
  const free = catalog.filter((id) => !busy.has(id))
  const handedOut = new Set<number>()
  const known = new Set(catalog)
  const unknownId = known.has(Number.MAX_SAFE_INTEGER)
    ? Math.max(...catalog) + 1
    : Number.MAX_SAFE_INTEGER
  return {
    take: () => {
      const id = free.shift()
      if (id === undefined) {
        throw new CheckNotRun(
          `no free datastream left: the catalog has ${String(catalog.length)}, ${String(busy.size)} of them subscribed before the run, ${String(handedOut.size)} used by this run`,
        )
      }
      handedOut.add(id)
      return id
    },
    unknownId,
    handedOut,
  }
}

/**
 * Deletes every listed subscription to a datastream the run handed out (they were free when it
 * began, so the run made them, however many a faulty server made), and the export schemas.
 */
async function cleanUp(
  clients: readonly AccountClient[],
  handedOut: ReadonlySet<number>,
  exportSchemas: readonly { client: AccountClient; id: string }[],
): Promise<ConformanceReport['cleanup']> {
  const problems: string[] = []
  const deletions: { client: AccountClient; path: string; kind: 'subscription' | 'schema' }[] = []
  for (const client of clients) {
    try {
      for (const subscription of await listSubscriptions(client)) {
        if (handedOut.has(subscription.datastream_id)) {
          deletions.push({
            client,
            path: `/v1/subscriptions/${subscription.id}`,
            kind: 'subscription',
          })
        }
      }
    } catch (error) {
      problems.push(`could not list the subscriptions of ${client.label}: ${String(error)}`)
    }
  }
  for (const { client, id } of exportSchemas) {
    deletions.push({ client, path: `/v1/export-schemas/${id}`, kind: 'schema' })
  }
  let deletedSubscriptions = 0
  let deletedExportSchemas = 0
  for (let i = 0; i < deletions.length; i += CLEANUP_PARALLELISM) {
    await Promise.all(
      deletions.slice(i, i + CLEANUP_PARALLELISM).map(async ({ client, path, kind }) => {
        try {
          const reply = await client.send({ method: 'DELETE', path })
          if (reply.status !== 204) {
            problems.push(`DELETE ${path}: ${describeReply(reply)}`)
          } else if (kind === 'subscription') deletedSubscriptions++
          else deletedExportSchemas++
        } catch (error) {
          problems.push(`DELETE ${path}: ${String(error)}`)
        }
      }),
    )
  }
  return { deletedSubscriptions, deletedExportSchemas, problems }
}
