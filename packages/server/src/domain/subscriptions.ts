import type { Queryable } from '../db/database.js'
import type { Account } from './accounts.js'
import { mayUseBilledFeatures } from './accounts.js'
import { ApiError } from './api-error.js'
import type { Datastream } from './catalog.js'
import { findDatastream, toDatastream } from './catalog.js'
import { datastreamIdOf, catalogIdOf } from './datastream-id.js'
import { isId, newId } from './ids.js'
import type { Page } from './page.js'
import { newestFirstKey, page, parseNewestFirstCursor } from './page.js'
import { toRfc3339 } from './time.js'

/**
 * The body of `POST /v1/subscriptions` (parsed with int64s kept exact): `{"datastream_id"}`,
 * nothing else. Run before the idempotency key is claimed, so a fixed body may reuse its key.
 */
export function parseCreateSubscriptionBody(body: unknown): { readonly datastreamId: bigint } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError('invalid_argument', 'The body must be a JSON object')
  }
  for (const key of Object.keys(body)) {
    if (key !== 'datastream_id') {
      throw new ApiError(
        'invalid_argument',
        `The body: unknown field "${key}" (allowed: datastream_id)`,
      )
    }
  }
  const value = (body as { datastream_id?: unknown }).datastream_id
  if (value === undefined) throw new ApiError('invalid_argument', 'datastream_id is required')
  const datastreamId = datastreamIdOf(value)
  if (datastreamId === undefined) {
    throw new ApiError('invalid_argument', 'datastream_id must be a positive integer (an int64)')
  }
  return { datastreamId }
}

export type SubscriptionStatus = 'active' | 'paused' | 'deleted'

export interface Subscription {
  readonly id: string
  readonly datastream_id: number
  readonly status: SubscriptionStatus
  readonly created_at: string
  readonly datastream: Datastream
}

export interface Span {
  readonly id: string
  readonly started_at: string
  readonly ended_at: string | null
}

interface SubscriptionRow {
  id: string
  datastream_id: number | string
  status: SubscriptionStatus
  created_at: number | string
  exchange: string
  instrument: string
  stream_type: Datastream['stream_type']
}

const SELECT_SUBSCRIPTION = `
  SELECT s.id, s.datastream_id, s.status, s.created_at, d.exchange, d.instrument, d.stream_type
    FROM subscriptions s JOIN datastreams d ON d.id = s.datastream_id`

function toSubscription(row: SubscriptionRow): Subscription {
  return {
    id: row.id,
    datastream_id: Number(row.datastream_id),
    status: row.status,
    created_at: toRfc3339(Number(row.created_at)),
    datastream: toDatastream({ ...row, id: row.datastream_id }),
  }
}

function paymentRequired(): ApiError {
  return new ApiError(
    'payment_required',
    'Your plan does not allow this action. Check your billing status.',
  )
}

/** The account's subscription, deleted ones included; another account's is unknown. */
async function find(db: Queryable, account: Account, id: string): Promise<Subscription> {
  const row = isId('sub', id)
    ? await db.get<SubscriptionRow>(`${SELECT_SUBSCRIPTION} WHERE s.id = ? AND s.account_id = ?`, [
        id,
        account.id,
      ])
    : undefined
  if (row === undefined) throw new ApiError('not_found', `Subscription ${id} not found`)
  return toSubscription(row)
}

export const getSubscription = find

/**
 * Subscribes the account to a datastream and opens a span now. A deleted subscription to the
 * same datastream is brought back under its id with a new `created_at` and only the new span.
 */
export async function createSubscription(
  db: Queryable,
  account: Account,
  requestedId: bigint,
  now: number,
): Promise<Subscription> {
  const catalogId = catalogIdOf(requestedId)
  const datastream = catalogId === undefined ? undefined : await findDatastream(db, catalogId)
  if (datastream === undefined) {
    throw new ApiError('not_found', `Datastream ${requestedId.toString()} not found`)
  }
  const datastreamId = datastream.datastream_id
  if (!mayUseBilledFeatures(account)) throw paymentRequired()
  // Every step is a conditional write, so that concurrent requests (several instances on
  // PostgreSQL, whose transactions do not serialise) can neither both create nor both revive it.
  let id = newId('sub', now)
  const inserted = await db.run(
    `INSERT INTO subscriptions (id, account_id, datastream_id, status, created_at)
     VALUES (?, ?, ?, 'active', ?) ON CONFLICT (account_id, datastream_id) DO NOTHING`,
    [id, account.id, datastreamId, now],
  )
  if (inserted === 0) {
    const existing = await db.get<{ id: string }>(
      'SELECT id FROM subscriptions WHERE account_id = ? AND datastream_id = ?',
      [account.id, datastreamId],
    )
    if (existing === undefined) throw new Error('a conflicting subscription vanished')
    id = existing.id
    const revived = await db.run(
      `UPDATE subscriptions SET status = 'active', created_at = ? WHERE id = ? AND status = 'deleted'`,
      [now, id],
    )
    if (revived === 0) {
      throw new ApiError(
        'already_exists',
        `Subscription to datastream ${String(datastreamId)} already exists`,
        { subscription_id: id },
      )
    }
    await db.run('DELETE FROM spans WHERE subscription_id = ?', [id])
  }
  await openSpan(db, id, now)
  return {
    id,
    datastream_id: datastreamId,
    status: 'active',
    created_at: toRfc3339(now),
    datastream,
  }
}

export async function listSubscriptions(
  db: Queryable,
  account: Account,
  query: { limit: number; after: string | undefined },
): Promise<Page<Subscription>> {
  const total = await db.get<{ n: number | string }>(
    `SELECT COUNT(*) AS n FROM subscriptions WHERE account_id = ? AND status <> 'deleted'`,
    [account.id],
  )
  // Newest first, by (created_at, id); the cursor is that pair, so inserts never shift a page.
  const cursor = query.after === undefined ? undefined : parseNewestFirstCursor(query.after, 'sub')
  const rows = await db.all<SubscriptionRow>(
    `${SELECT_SUBSCRIPTION}
      WHERE s.account_id = ? AND s.status <> 'deleted'
        ${cursor === undefined ? '' : 'AND (s.created_at < ? OR (s.created_at = ? AND s.id < ?))'}
      ORDER BY s.created_at DESC, s.id DESC LIMIT ?`,
    cursor === undefined
      ? [account.id, query.limit + 1]
      : [account.id, cursor.createdAt, cursor.createdAt, cursor.id, query.limit + 1],
  )
  const result = page(rows, query.limit, Number(total?.n ?? 0), newestFirstKey)
  return { ...result, items: result.items.map(toSubscription) }
}

export async function listSpans(db: Queryable, account: Account, id: string): Promise<Span[]> {
  await find(db, account, id)
  const rows = await db.all<{
    id: string
    started_at: number | string
    ended_at: number | string | null
  }>(
    'SELECT id, started_at, ended_at FROM spans WHERE subscription_id = ? ORDER BY started_at, id',
    [id],
  )
  return rows.map((row) => ({
    id: row.id,
    started_at: toRfc3339(Number(row.started_at)),
    ended_at: row.ended_at === null ? null : toRfc3339(Number(row.ended_at)),
  }))
}

/** Closes the open span. Paused already: no change. */
export async function pauseSubscription(
  db: Queryable,
  account: Account,
  id: string,
  now: number,
): Promise<void> {
  const subscription = await find(db, account, id)
  if (subscription.status === 'deleted') {
    throw new ApiError('permission_denied', 'Subscription has been deleted')
  }
  if (subscription.status === 'paused') return
  const changed = await db.run(
    `UPDATE subscriptions SET status = 'paused' WHERE id = ? AND status = 'active'`,
    [id],
  )
  // Changed meanwhile by another request: answer for the state it is in now.
  if (changed === 0) return pauseSubscription(db, account, id, now)
  await db.run('UPDATE spans SET ended_at = ? WHERE subscription_id = ? AND ended_at IS NULL', [
    now,
    id,
  ])
}

/** Opens a span. Active already: no change (and no billing check, since nothing is started). */
export async function resumeSubscription(
  db: Queryable,
  account: Account,
  id: string,
  now: number,
): Promise<void> {
  const subscription = await find(db, account, id)
  if (subscription.status === 'deleted') {
    throw new ApiError('permission_denied', 'Subscription has been deleted')
  }
  if (subscription.status === 'active') return
  if (!mayUseBilledFeatures(account)) throw paymentRequired()
  const changed = await db.run(
    `UPDATE subscriptions SET status = 'active' WHERE id = ? AND status = 'paused'`,
    [id],
  )
  if (changed === 0) return resumeSubscription(db, account, id, now)
  await openSpan(db, id, now)
}

/** Stops recording and removes every span. Deleted already: no change. */
export async function deleteSubscription(
  db: Queryable,
  account: Account,
  id: string,
): Promise<void> {
  await find(db, account, id)
  const changed = await db.run(
    `UPDATE subscriptions SET status = 'deleted' WHERE id = ? AND status <> 'deleted'`,
    [id],
  )
  if (changed === 1) await db.run('DELETE FROM spans WHERE subscription_id = ?', [id])
}

async function openSpan(db: Queryable, subscriptionId: string, now: number): Promise<void> {
  await db.run('INSERT INTO spans (id, subscription_id, started_at) VALUES (?, ?, ?)', [
    newId('spn', now),
    subscriptionId,
    now,
  ])
}
