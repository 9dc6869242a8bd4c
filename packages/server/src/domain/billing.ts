import type { Queryable } from '../db/database.js'
import type { AccessStatus } from './accounts.js'
import { effectiveAccessStatus } from './accounts.js'
import { exportBytesInPeriod } from './export-usage.js'
import type { Plan } from './plans.js'
import { PLANS, isPlanCode } from './plans.js'
import { toRfc3339 } from './time.js'

/** `GET /v1/billing/summary`, as the wire shows it. */
export interface BillingSummary {
  readonly access_status: AccessStatus
  readonly usage: {
    /** Stream-minutes recorded beyond the plan's concurrent streams this period. */
    readonly extra_stream_minutes_total: number
    /** GiB of successful exports this period, as a decimal string (up to 3 fractional digits). */
    readonly export_gb_total: string
    /** Whole GiB beyond the plan's allowance, rounded up. */
    readonly export_gb_extra: number
  }
  readonly grace_until: string | null
  readonly plan_code: string | null
  readonly current_period_end: string | null
}

export interface BillingPeriod {
  readonly startMs: number
  /** Exclusive: the first millisecond of the next period. */
  readonly endMs: number
}

const GIB = 1024 ** 3
const MINUTE_MS = 60_000

/** The billing period containing `nowMs`: the calendar month in UTC. */
export function billingPeriod(nowMs: number): BillingPeriod {
  const now = new Date(nowMs)
  return {
    startMs: Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1),
    endMs: Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1),
  }
}

/**
 * The account's plan, status and usage in the current period, as of `nowMs`.
 *
 * - An account with status `NONE` has no billing subscription: no plan, no period end and
 *   nothing extra (usage totals are still reported).
 * - `TRIALING` and plans without overage never report anything extra.
 * - `grace_until` only while the status in force is `GRACE`.
 */
export async function billingSummary(
  db: Queryable,
  accountId: string,
  nowMs: number,
): Promise<BillingSummary> {
  const account = await db.get<{
    access_status: AccessStatus
    plan_code: string
    grace_until: number | string | null
  }>('SELECT access_status, plan_code, grace_until FROM accounts WHERE id = ?', [accountId])
  if (account === undefined) throw new Error(`account ${accountId} vanished`)
  const status = effectiveAccessStatus(account.access_status, account.grace_until, nowMs)
  const period = billingPeriod(nowMs)
  const until = Math.min(nowMs, period.endMs)
  const subscribed = status !== 'NONE'
  const plan: Plan | undefined =
    subscribed && isPlanCode(account.plan_code) ? PLANS[account.plan_code] : undefined
  // The plan whose overage is billed: none while trialing or on a plan without overage.
  const billed = plan?.overage === true && status !== 'TRIALING' ? plan : undefined

  const exportBytes = await exportBytesInPeriod(db, accountId, period.startMs, until)
  const extraStreamMs =
    billed === undefined
      ? 0
      : await streamMsBeyond(db, accountId, period.startMs, until, billed.includedConcurrentStreams)
  const extraBytes =
    billed === undefined ? 0 : Math.max(exportBytes - billed.includedExportGb * GIB, 0)

  return {
    access_status: status,
    usage: {
      extra_stream_minutes_total: Math.floor(extraStreamMs / MINUTE_MS),
      export_gb_total: formatGib(exportBytes),
      export_gb_extra: Math.ceil(extraBytes / GIB),
    },
    grace_until:
      status === 'GRACE' && account.grace_until !== null
        ? toRfc3339(Number(account.grace_until))
        : null,
    plan_code: subscribed ? account.plan_code : null,
    current_period_end: subscribed ? toRfc3339(period.endMs) : null,
  }
}

/**
 * Stream-milliseconds in `[fromMs, toMs)` during which more than `included` of the account's
 * streams recorded at once: at each moment, the streams beyond the allowance count. A span
 * still open counts up to `toMs`.
 */
export async function streamMsBeyond(
  db: Queryable,
  accountId: string,
  fromMs: number,
  toMs: number,
  included: number,
): Promise<number> {
  const spans = await db.all<{ started_at: number | string; ended_at: number | string | null }>(
    `SELECT p.started_at, p.ended_at
       FROM spans p JOIN subscriptions s ON s.id = p.subscription_id
      WHERE s.account_id = ? AND p.started_at < ? AND (p.ended_at IS NULL OR p.ended_at > ?)`,
    [accountId, toMs, fromMs],
  )
  // A sweep over the span edges, clipped to the period: +1 where a span starts, -1 where it ends.
  const edges: [atMs: number, delta: 1 | -1][] = []
  for (const span of spans) {
    const start = Math.max(Number(span.started_at), fromMs)
    const end = Math.min(span.ended_at === null ? toMs : Number(span.ended_at), toMs)
    if (end > start) edges.push([start, 1], [end, -1])
  }
  // At one instant ends come before starts: a pause and a resume in the same millisecond are
  // not two streams at once.
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  let active = 0
  let previousMs = fromMs
  let beyondMs = 0
  for (const [atMs, delta] of edges) {
    beyondMs += Math.max(active - included, 0) * (atMs - previousMs)
    active += delta
    previousMs = atMs
  }
  return beyondMs
}

/** Bytes as GiB in decimal, rounded to three fractional digits, without trailing zeros. */
export function formatGib(bytes: number): string {
  const thousandths = Math.round((bytes * 1000) / GIB)
  const whole = Math.floor(thousandths / 1000)
  const fraction = String(thousandths % 1000)
    .padStart(3, '0')
    .replace(/0+$/, '')
  return fraction === '' ? String(whole) : `${String(whole)}.${fraction}`
}
