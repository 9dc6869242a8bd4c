import type { Clock } from '../../core/clock.js'
import { systemClock } from '../../core/clock.js'
import type { StoredResponse } from '../../core/record.js'
import type { ClaimOutcome, ClaimRef, ClaimRequest, Store } from '../../core/store.js'
import type { SqliteConnection, SqliteTransaction } from './sqlite-connection.js'
import { createSettleListeners } from '../settle-listeners.js'
import type { CompletedRecord } from '../completed-cache.js'
import { createCompletedCache } from '../completed-cache.js'

export interface SqliteStoreOptions {
  readonly connection: SqliteConnection
  /**
   * The table the records live in; created if missing.
   * @default 'idempotency_records'
   */
  readonly tableName?: string
  /** Lease and expiry arithmetic. @default systemClock */
  readonly clock?: Clock
  /**
   * Completed records kept in memory for replays (they never change until they expire).
   * 0 turns the cache off.
   * @default 10_000
   */
  readonly cacheSize?: number
}

export type SqliteStore = Store<SqliteTransaction>

interface RecordRow {
  fingerprint: string
  state: 'in_progress' | 'completed'
  token: string | null
  lease_expires_at: number | null
  expires_at: number
  response_status: number | null
  response_headers: string | null
  response_body: Buffer | null
  original_request_id: string | null
}

/**
 * Idempotency records in SQLite. Safe for one process or several sharing the file: every
 * change is a single statement whose WHERE clause is the compare-and-set (token, state, lease),
 * so a lost race changes nothing and the claim is tried again.
 */
export function createSqliteStore(options: SqliteStoreOptions): SqliteStore {
  const { connection } = options
  const clock = options.clock ?? systemClock
  const table = options.tableName ?? 'idempotency_records'
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(table)) {
    throw new TypeError(`Expected \`tableName\` to be a plain SQL identifier, got ${table}.`)
  }
  const db = connection.database
  const cache = createCompletedCache(options.cacheSize ?? 10_000)
  const listeners = createSettleListeners()

  // The primary key is (scope, key) as two columns: no key text can reach another scope.
  db.exec(`
    CREATE TABLE IF NOT EXISTS ${table} (
      scope TEXT NOT NULL,
      key TEXT NOT NULL,
      fingerprint TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('in_progress', 'completed')),
      token TEXT,
      lease_expires_at INTEGER,
      expires_at INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      response_status INTEGER,
      response_headers TEXT,
      response_body BLOB,
      original_request_id TEXT,
      PRIMARY KEY (scope, key),
      CHECK ((state = 'in_progress') = (token IS NOT NULL AND lease_expires_at IS NOT NULL)),
      CHECK ((state = 'completed') = (response_status IS NOT NULL))
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS ${table}_expires_at ON ${table} (expires_at);
  `)

  const insert = db.prepare<[string, string, string, string, number, number, number]>(
    `INSERT INTO ${table} (scope, key, fingerprint, state, token, lease_expires_at, expires_at, created_at)
     VALUES (?, ?, ?, 'in_progress', ?, ?, ?, ?)
     ON CONFLICT (scope, key) DO NOTHING`,
  )
  const select = db.prepare<[string, string], RecordRow>(
    `SELECT fingerprint, state, token, lease_expires_at, expires_at, response_status,
            response_headers, response_body, original_request_id
       FROM ${table} WHERE scope = ? AND key = ?`,
  )
  // An expired record is replaced in place, but only if it is still the row we looked at
  // (same expiry, same token): a concurrent replacement by another process wins instead.
  const replaceExpired = db.prepare(
    `UPDATE ${table}
        SET fingerprint = @fingerprint, state = 'in_progress', token = @token,
            lease_expires_at = @leaseExpiresAt, expires_at = @expiresAt, created_at = @now,
            response_status = NULL, response_headers = NULL, response_body = NULL,
            original_request_id = NULL
      WHERE scope = @scope AND key = @key AND expires_at = @oldExpiresAt AND token IS @oldToken`,
  )
  // Takeover: only an in-progress row whose lease has lapsed and whose token is the one we saw.
  const takeOver = db.prepare(
    `UPDATE ${table} SET token = @token, lease_expires_at = @leaseExpiresAt
      WHERE scope = @scope AND key = @key AND state = 'in_progress'
        AND token = @oldToken AND lease_expires_at <= @now`,
  )
  const renew = db.prepare<[number, string, string, string]>(
    `UPDATE ${table} SET lease_expires_at = ?
      WHERE scope = ? AND key = ? AND token = ? AND state = 'in_progress'`,
  )
  const complete = db.prepare<
    [number, string, Buffer, string, string, string, string],
    { fingerprint: string; expires_at: number }
  >(
    `UPDATE ${table}
        SET state = 'completed', token = NULL, lease_expires_at = NULL,
            response_status = ?, response_headers = ?, response_body = ?, original_request_id = ?
      WHERE scope = ? AND key = ? AND token = ? AND state = 'in_progress'
      RETURNING fingerprint, expires_at`,
  )
  const release = db.prepare<[string, string, string]>(
    `DELETE FROM ${table} WHERE scope = ? AND key = ? AND token = ? AND state = 'in_progress'`,
  )
  // Bounded: one batch holds the write lock for at most `limit` rows. A live lease is never
  // purged, even past the record's expiry, so purge cannot pull a key from under its owner.
  const purge = db.prepare<[number, number, number]>(
    `DELETE FROM ${table} WHERE (scope, key) IN (
       SELECT scope, key FROM ${table}
        WHERE expires_at <= ? AND (state = 'completed' OR lease_expires_at <= ?)
        LIMIT ?)`,
  )

  function cachedOutcome(request: ClaimRequest): ClaimOutcome | undefined {
    const cached = cache.get(request.scope, request.key, clock.now())
    if (cached === undefined) return undefined
    return cached.fingerprint === request.fingerprint
      ? { kind: 'replay', response: cached.response }
      : { kind: 'mismatch' }
  }

  function claimNow(request: ClaimRequest): ClaimOutcome {
    const { scope, key, token, fingerprint } = request
    const now = clock.now()
    const leaseExpiresAt = now + request.leaseMs
    // A few rounds at most: each lost compare-and-set means another process changed the row.
    for (let round = 0; round < 5; round++) {
      if (
        insert.run(scope, key, fingerprint, token, leaseExpiresAt, now + request.ttlMs, now)
          .changes === 1
      ) {
        return { kind: 'claimed', takeover: false }
      }
      const row = select.get(scope, key)
      if (row === undefined) continue
      const leaseLive = row.state === 'in_progress' && (row.lease_expires_at ?? 0) > now
      if (row.expires_at <= now && !leaseLive) {
        const changed = replaceExpired.run({
          scope,
          key,
          fingerprint,
          token,
          leaseExpiresAt,
          expiresAt: now + request.ttlMs,
          now,
          oldExpiresAt: row.expires_at,
          oldToken: row.token,
        }).changes
        if (changed === 1) return { kind: 'claimed', takeover: false }
        continue
      }
      if (row.fingerprint !== fingerprint) return { kind: 'mismatch' }
      if (row.state === 'completed') {
        const response = toResponse(row)
        cache.set(scope, key, { fingerprint: row.fingerprint, response, expiresAt: row.expires_at })
        return { kind: 'replay', response }
      }
      if (leaseLive) return { kind: 'in_progress' }
      if (
        takeOver.run({ scope, key, token, leaseExpiresAt, oldToken: row.token, now }).changes === 1
      ) {
        return { kind: 'claimed', takeover: true }
      }
    }
    throw new Error(`Claim of an idempotency key kept losing races in ${table}`)
  }

  /** Resolves the completed record's cache entry, or undefined when the token lost the key. */
  function completeNow(ref: ClaimRef, response: StoredResponse): CompletedRecord | undefined {
    const body = Buffer.from(
      response.body.buffer,
      response.body.byteOffset,
      response.body.byteLength,
    )
    const headers = JSON.stringify(response.headers)
    const row = complete.get(
      response.status,
      headers,
      body,
      response.requestId,
      ref.scope,
      ref.key,
      ref.token,
    )
    return row && { fingerprint: row.fingerprint, response, expiresAt: row.expires_at }
  }

  function afterCompleted(ref: ClaimRef, record: CompletedRecord) {
    cache.set(ref.scope, ref.key, record)
    listeners.notify(ref.scope, ref.key)
  }

  return {
    claim: (request) => {
      // A replay of a cached record needs no database at all.
      const cached = cachedOutcome(request)
      return cached === undefined
        ? connection.write(() => claimNow(request))
        : Promise.resolve(cached)
    },
    renew: (ref, leaseMs) =>
      connection.write(
        () => renew.run(clock.now() + leaseMs, ref.scope, ref.key, ref.token).changes === 1,
      ),
    async complete(ref, response, tx) {
      if (tx !== undefined) {
        // Inside the caller's transaction, which already holds the connection. Waiters are
        // woken and the cache filled only once the transaction has committed.
        const record = completeNow(ref, response)
        if (record !== undefined) {
          tx.afterCommit(() => {
            afterCompleted(ref, record)
          })
        }
        return record !== undefined
      }
      const record = await connection.write(() => completeNow(ref, response))
      if (record !== undefined) afterCompleted(ref, record)
      return record !== undefined
    },
    async release(ref) {
      const released = await connection.write(
        () => release.run(ref.scope, ref.key, ref.token).changes === 1,
      )
      if (released) listeners.notify(ref.scope, ref.key)
      return released
    },
    onSettled: (scope, key, listener) => listeners.subscribe(scope, key, listener),
    purgeExpired: (limit) =>
      connection.exclusive(() => {
        const now = clock.now()
        return purge.run(now, now, limit).changes
      }),
  }
}

function toResponse(row: RecordRow): StoredResponse {
  return {
    status: row.response_status ?? 0,
    headers: JSON.parse(row.response_headers ?? '{}') as Record<string, string>,
    body: row.response_body ?? Buffer.alloc(0),
    requestId: row.original_request_id ?? '',
  }
}
