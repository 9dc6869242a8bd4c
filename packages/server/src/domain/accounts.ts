import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Queryable } from '../db/database.js'
import { newId } from './ids.js'
import type { PlanCode } from './plans.js'

export type AccessStatus = 'ACTIVE' | 'TRIALING' | 'GRACE' | 'SUSPENDED' | 'NONE'

export interface Account {
  readonly id: string
  readonly name: string
  readonly accessStatus: AccessStatus
}

/** A fresh API key: 24 random bytes, with a prefix that makes a leaked key recognisable. */
export function generateApiKey(): string {
  return `tsk_${randomBytes(24).toString('base64url')}`
}

function hashApiKey(apiKey: string): string {
  return createHash('sha256').update(apiKey).digest('hex')
}

/** Finds or creates the account by name. */
export async function ensureAccount(db: Queryable, name: string, now: number): Promise<Account> {
  await db.run(
    'INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING',
    [newId('acct', now), name, now],
  )
  const row = await db.get<{ id: string; name: string; access_status: AccessStatus }>(
    'SELECT id, name, access_status FROM accounts WHERE name = ?',
    [name],
  )
  if (row === undefined) throw new Error(`account ${name} vanished while being created`)
  return { id: row.id, name: row.name, accessStatus: row.access_status }
}

/** Stores `apiKey` (as its digest) for the account; a key that already exists is left alone. */
export async function addApiKey(
  db: Queryable,
  accountId: string,
  apiKey: string,
  now: number,
): Promise<void> {
  await db.run(
    `INSERT INTO api_keys (id, account_id, key_hash, key_prefix, created_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (key_hash) DO NOTHING`,
    [newId('key', now), accountId, hashApiKey(apiKey), apiKey.slice(0, 8), now],
  )
}

/**
 * The account an API key belongs to, or undefined for a missing, unknown or revoked key.
 * The lookup is by digest; the digests are then compared in constant time so that nothing
 * about a near-miss leaks through timing.
 */
export async function authenticate(
  db: Queryable,
  apiKey: string,
  now: number = Date.now(),
): Promise<Account | undefined> {
  const digest = hashApiKey(apiKey)
  const row = await db.get<{
    key_hash: string
    id: string
    name: string
    access_status: AccessStatus
    grace_until: number | string | null
  }>(
    `SELECT k.key_hash, a.id, a.name, a.access_status, a.grace_until
       FROM api_keys k JOIN accounts a ON a.id = k.account_id
      WHERE k.key_hash = ? AND k.revoked_at IS NULL`,
    [digest],
  )
  if (row === undefined) return undefined
  if (!timingSafeEqual(Buffer.from(row.key_hash, 'hex'), Buffer.from(digest, 'hex')))
    return undefined
  return {
    id: row.id,
    name: row.name,
    accessStatus: effectiveAccessStatus(row.access_status, row.grace_until, now),
  }
}

/**
 * The status in force: a grace period that has ended is `SUSPENDED` without anyone having to
 * change the account (docs/decisions/0302-billing.md).
 */
export function effectiveAccessStatus(
  stored: AccessStatus,
  graceUntil: number | string | null,
  now: number,
): AccessStatus {
  if (stored === 'GRACE' && graceUntil !== null && Number(graceUntil) <= now) return 'SUSPENDED'
  return stored
}

/** Sets the access status; `graceUntil` (epoch ms) is kept only with `GRACE`. */
export async function setAccessStatus(
  db: Queryable,
  name: string,
  status: AccessStatus,
  graceUntil: number | null = null,
): Promise<boolean> {
  const changed = await db.run(
    'UPDATE accounts SET access_status = ?, grace_until = ? WHERE name = ?',
    [status, status === 'GRACE' ? graceUntil : null, name],
  )
  return changed === 1
}

/** Moves the account to another plan (see domain/plans.ts). */
export async function setPlan(db: Queryable, name: string, plan: PlanCode): Promise<boolean> {
  return (await db.run('UPDATE accounts SET plan_code = ? WHERE name = ?', [plan, name])) === 1
}

/** Whether the account may take billing-gated actions (create or resume a subscription, export). */
export function mayUseBilledFeatures(account: Account): boolean {
  return account.accessStatus !== 'SUSPENDED' && account.accessStatus !== 'NONE'
}
