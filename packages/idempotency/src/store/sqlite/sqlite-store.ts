import type { Clock } from '../../core/clock.js'
import { systemClock } from '../../core/clock.js'
import type { StoredResponse } from '../../core/record.js'
import type { ClaimOutcome, ClaimRef, ClaimRequest, Store } from '../../core/store.js'
import { decideClaim } from '../claim-decision.js'
import type { RecordView } from '../claim-decision.js'
import type { CompletedCacheOptions, CompletedCacheStats } from '../completed-cache.js'
import { createCompletedCache } from '../completed-cache.js'
import { createLocalClaims } from '../local-claims.js'
import type { LocalClaim } from '../local-claims.js'
import { createSettleListeners, recordId } from '../settle-listeners.js'
import type { SqliteConnection, SqliteTransaction } from './sqlite-connection.js'
import { acquireOwnership } from './sqlite-ownership.js'

export interface SqliteStoreOptions extends CompletedCacheOptions {
  readonly connection: SqliteConnection
  /**
   * The table the records live in; created if missing.
   * @default 'idempotency_records'
   */
  readonly tableName?: string
  /** Expiry arithmetic. @default systemClock */
  readonly clock?: Clock
}

export interface SqliteStore extends Store<SqliteTransaction> {
  /** Claims held right now (in this process's memory). */
  readonly inProgress: number
  readonly cache: () => CompletedCacheStats
  /** Gives the file back, so that another process may own it. Claims still held are dropped. */
  close(): void
}

interface RecordRow {
  fingerprint: string
  state: 'in_progress' | 'completed'
  expires_at: number
  response_status: number | null
  response_headers: string | null
  response_body: Buffer | null
  original_request_id: string | null
}

/**
 * Idempotency records in SQLite, owned by one process.
 *
 * A claim lives in this process's memory, not in the file: the first request of a key costs
 * one read (on the read connection, which sees only committed records) and one write, the
 * completed record, which goes into the operation's own transaction or into the next group
 * commit. A process that dies leaves nothing in progress behind, so the retry after a restart
 * runs at once. The price is that the file has one owner: a second process (or a second store
 * in this one) is refused while the owner lives ({@link SqliteStoreOwnedError}), and several
 * instances need PostgreSQL.
 */
export function createSqliteStore(options: SqliteStoreOptions): SqliteStore {
  const { connection } = options
  const clock = options.clock ?? systemClock
  const table = options.tableName ?? 'idempotency_records'
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(table)) {
    throw new TypeError(`Expected \`tableName\` to be a plain SQL identifier, got ${table}.`)
  }
  const db = connection.database
  const cache = createCompletedCache(options)
  const listeners = createSettleListeners()
  const claims = createLocalClaims()

  // The primary key is (scope, key) as two columns: no key text can reach another scope.
  // `state`, `token` and `lease_expires_at` are kept for files written by earlier versions,
  // whose claims were rows; this version writes completed records only.
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
  const ownership = acquireOwnership(connection, table)
  // Claims written as rows by an earlier version belong to a process that is gone.
  db.prepare(`DELETE FROM ${table} WHERE state = 'in_progress'`).run()

  const select = db.prepare<[string, string], RecordRow>(
    `SELECT fingerprint, state, expires_at, response_status, response_headers, response_body,
            original_request_id
       FROM ${table} WHERE scope = ? AND key = ?`,
  )
  // Statements on the read connection are prepared there: a statement belongs to one handle.
  const selectCommitted = new WeakMap<object, typeof select>()
  const selectOn = (handle: typeof db) => {
    if (handle === db) return select
    let statement = selectCommitted.get(handle)
    if (statement === undefined) {
      statement = handle.prepare<[string, string], RecordRow>(select.source)
      selectCommitted.set(handle, statement)
    }
    return statement
  }
  // The completed record, written once. It may replace an expired record (not yet purged);
  // never a live one, which would mean the claim was not ours.
  const insertCompleted = db.prepare<{
    scope: string
    key: string
    fingerprint: string
    expiresAt: number
    createdAt: number
    status: number
    headers: string
    body: Buffer
    requestId: string
    now: number
  }>(
    `INSERT INTO ${table} (scope, key, fingerprint, state, expires_at, created_at,
                           response_status, response_headers, response_body, original_request_id)
     VALUES (@scope, @key, @fingerprint, 'completed', @expiresAt, @createdAt,
             @status, @headers, @body, @requestId)
     ON CONFLICT (scope, key) DO UPDATE SET
       fingerprint = excluded.fingerprint, state = 'completed', token = NULL,
       lease_expires_at = NULL, expires_at = excluded.expires_at,
       created_at = excluded.created_at, response_status = excluded.response_status,
       response_headers = excluded.response_headers, response_body = excluded.response_body,
       original_request_id = excluded.original_request_id
     WHERE ${table}.expires_at <= @now`,
  )
  // Bounded: one batch holds the write lock for at most `limit` rows.
  const purge = db.prepare<[number, number]>(
    `DELETE FROM ${table} WHERE (scope, key) IN (
       SELECT scope, key FROM ${table} WHERE expires_at <= ? LIMIT ?)`,
  )

  interface HeldClaim extends LocalClaim {
    readonly createdAt: number
  }

  /** One claim attempt, synchronous from the first look to the decision: nothing interleaves. */
  function claimNow(request: ClaimRequest, handle: typeof db): ClaimOutcome {
    if (ownership.signal.aborted) throw ownership.signal.reason
    const { scope, key, fingerprint, token } = request
    const id = recordId(scope, key)
    const held = claims.get(id)
    if (held !== undefined) return held.fingerprint === fingerprint ? IN_PROGRESS : MISMATCH
    const now = clock.now()
    const cached = cache.get(id, now)
    if (cached !== undefined) {
      return cached.fingerprint === fingerprint
        ? { kind: 'replay', response: cached.response }
        : MISMATCH
    }
    const row = selectOn(handle).get(scope, key)
    const view = row === undefined ? undefined : toView(row)
    const decision = decideClaim(view, fingerprint, now)
    switch (decision.kind) {
      // No row is in progress in this version (claims are in memory): a take-over cannot
      // come up, and a leftover from an earlier version was deleted at start.
      case 'fresh':
      case 'take_over': {
        const claim: HeldClaim = {
          fingerprint,
          token,
          expiresAt: now + request.ttlMs,
          createdAt: now,
        }
        claims.add(id, claim)
        return { kind: 'claimed', takeover: false, lost: ownership.signal }
      }
      case 'replay':
        if (view?.state === 'completed') {
          cache.set(id, { fingerprint, response: decision.response, expiresAt: view.expiresAt })
        }
        return decision
      case 'mismatch':
      case 'in_progress':
        return decision
    }
  }

  /** On the write connection: inside the caller's transaction, or in a group commit. */
  function writeCompleted(ref: ClaimRef, claim: HeldClaim, response: StoredResponse): boolean {
    return (
      insertCompleted.run({
        scope: ref.scope,
        key: ref.key,
        fingerprint: claim.fingerprint,
        expiresAt: claim.expiresAt,
        createdAt: claim.createdAt,
        status: response.status,
        headers: JSON.stringify(response.headers),
        body: Buffer.from(response.body.buffer, response.body.byteOffset, response.body.byteLength),
        requestId: response.requestId,
        now: clock.now(),
      }).changes === 1
    )
  }

  /** Once the record is committed: the cache learns it, the claim ends, waiters wake. */
  function afterCompleted(id: string, ref: ClaimRef, claim: HeldClaim, response: StoredResponse) {
    if (!claims.delete(id, ref.token)) return
    cache.set(id, { fingerprint: claim.fingerprint, response, expiresAt: claim.expiresAt })
    listeners.notify(ref.scope, ref.key)
  }

  const heldBy = (ref: ClaimRef): { id: string; claim: HeldClaim } | undefined => {
    const id = recordId(ref.scope, ref.key)
    const claim = claims.get(id) as HeldClaim | undefined
    return claim?.token === ref.token ? { id, claim } : undefined
  }

  return {
    claimLifetime: 'process',
    claim: (request) => connection.read((handle) => claimNow(request, handle)),
    async complete(ref, response, tx) {
      const held = heldBy(ref)
      if (held === undefined || ownership.signal.aborted) return false
      if (tx !== undefined) {
        // Inside the caller's transaction, which already holds the connection. The claim
        // stays held until the transaction commits: a rollback leaves it to be released.
        if (!writeCompleted(ref, held.claim, response)) return false
        tx.afterCommit(() => {
          afterCompleted(held.id, ref, held.claim, response)
        })
        return true
      }
      const written = await connection.write(() => writeCompleted(ref, held.claim, response))
      if (written) afterCompleted(held.id, ref, held.claim, response)
      return written
    },
    release(ref) {
      const id = recordId(ref.scope, ref.key)
      const released = claims.delete(id, ref.token)
      if (released) listeners.notify(ref.scope, ref.key)
      return Promise.resolve(released)
    },
    onSettled: (scope, key, listener) => listeners.subscribe(scope, key, listener),
    purgeExpired: (limit) => connection.exclusive(() => purge.run(clock.now(), limit).changes),
    get inProgress() {
      return claims.size
    },
    cache: () => cache.stats(),
    close() {
      ownership.release()
    },
  }
}

const IN_PROGRESS = { kind: 'in_progress' } as const
const MISMATCH = { kind: 'mismatch' } as const

function toView(row: RecordRow): RecordView {
  if (row.state === 'in_progress') {
    return {
      state: 'in_progress',
      fingerprint: row.fingerprint,
      expiresAt: row.expires_at,
      holderAlive: false,
    }
  }
  return {
    state: 'completed',
    fingerprint: row.fingerprint,
    expiresAt: row.expires_at,
    response: {
      status: row.response_status ?? 0,
      headers: JSON.parse(row.response_headers ?? '{}') as Record<string, string>,
      body: row.response_body ?? Buffer.alloc(0),
      requestId: row.original_request_id ?? '',
    },
  }
}
