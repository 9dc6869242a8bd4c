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
import type { SqliteKeyFilter, SqliteKeyFilterStats } from './sqlite-key-filter.js'
import { startSqliteKeyFilter } from './sqlite-key-filter.js'
import { sqliteKeyHash } from './sqlite-key-hash.js'
import { acquireOwnership } from './sqlite-ownership.js'
import { ensureSqliteSchema } from './sqlite-schema.js'

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
  /** The filter of keys the file may hold, which lets a new key's claim skip its look-up. */
  readonly keyFilter: () => SqliteKeyFilterStats
  /**
   * Gives the file back, so that another process may own it. Claims still held are dropped:
   * their completions are refused, and duplicates waiting on them look again at once (and fail,
   * as every claim on a closed store does).
   */
  close(): void
}

interface RecordRow {
  fingerprint: Buffer
  expires_at: number
  status: number
  headers: string
  body: Buffer
  request_id: string
}

/**
 * Idempotency records in SQLite, owned by one process.
 *
 * A claim lives in this process's memory, not in the file: the first request of a key costs
 * one write, the completed record, which goes into the operation's own transaction or into the
 * next group commit, and no read once the filter of the file's keys knows the key is new
 * (otherwise one read, of committed records only). A process that dies leaves nothing in
 * progress behind, so the retry after a restart runs at once. The price is that the file has one owner: a second process (or a second store
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

  // Owned first: a file another process owns is not touched, not even migrated (an owner of an
  // earlier version would go on writing the layout it knows).
  const ownership = acquireOwnership(connection, table)
  let keyFilter: SqliteKeyFilter
  try {
    ensureSqliteSchema(db, table)
    keyFilter = startSqliteKeyFilter(connection, table)
  } catch (error) {
    ownership.release()
    throw error
  }
  let closed = false
  // Waiters sleep until a notice (the engine does not poll a store whose claims are its own):
  // once the store cannot answer for its claims, they must look again and hear why.
  ownership.signal.addEventListener('abort', () => {
    listeners.notifyAll()
  })

  const select = db.prepare<[number, string, string], RecordRow>(
    `SELECT fingerprint, expires_at, status, headers, body, request_id
       FROM ${table} WHERE key_hash = ? AND scope = ? AND key = ?`,
  )
  // Statements on the read connection are prepared there: a statement belongs to one handle.
  const selectCommitted = new WeakMap<object, typeof select>()
  const selectOn = (handle: typeof db) => {
    if (handle === db) return select
    let statement = selectCommitted.get(handle)
    if (statement === undefined) {
      statement = handle.prepare<[number, string, string], RecordRow>(select.source)
      selectCommitted.set(handle, statement)
    }
    return statement
  }
  // The completed record, written once, appended. A record already under the key would mean
  // the claim was not ours: the insert then writes nothing. Its look-up descends the index leaf
  // the insert writes to, so it costs little more than the insert alone.
  // Positional parameters: binding by name costs a property lookup per parameter, per write.
  const insertCompleted = db.prepare<
    [
      string,
      string,
      Buffer,
      number,
      number,
      number,
      string,
      Buffer,
      string,
      number,
      number,
      string,
      string,
    ]
  >(
    `INSERT INTO ${table} (scope, key, fingerprint, expires_at, created_at, status, headers, body,
                           request_id, key_hash)
     SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
      WHERE NOT EXISTS (SELECT 1 FROM ${table} WHERE key_hash = ? AND scope = ? AND key = ?)`,
  )
  // An expired record not purged yet goes first, so that the new one is appended in its turn.
  // The expired record the claim found, by the expiry it read: on no clock, so that a clock
  // that steps back between the claim and its completion cannot keep it in place.
  const deleteExpired = db.prepare<[number, string, string, number]>(
    `DELETE FROM ${table} WHERE key_hash = ? AND scope = ? AND key = ? AND expires_at = ?`,
  )
  // Bounded: among the oldest rows (by rowid, which follows expiry), delete up to `limit` that
  // have expired. One batch holds the write lock for a bounded number of rows.
  const purge = db.prepare<{ now: number; limit: number; window: number }>(
    `DELETE FROM ${table} WHERE id IN (
       SELECT id FROM (SELECT id, expires_at FROM ${table} ORDER BY id LIMIT @window)
        WHERE expires_at <= @now LIMIT @limit)`,
  )

  interface HeldClaim extends LocalClaim {
    readonly createdAt: number
    /** The expiry of the expired record the claim found under the key, not purged yet. */
    readonly replacesExpiry: number | undefined
  }

  /** One claim attempt, synchronous from the first look to the decision: nothing interleaves. */
  function claimNow(request: ClaimRequest, handle: typeof db): ClaimOutcome {
    if (ownership.signal.aborted) throw ownership.signal.reason
    if (closed) throw new Error('the SQLite idempotency store was closed')
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
    const row = keyFilter.mayHold(scope, key, handle)
      ? selectOn(handle).get(sqliteKeyHash(scope, key), scope, key)
      : undefined
    const view = row === undefined ? undefined : toView(row)
    const decision = decideClaim(view, fingerprint, now)
    switch (decision.kind) {
      // No row is in progress in this version (claims are in memory): a take-over cannot
      // come up, and a leftover from an earlier version was deleted at start.
      case 'fresh':
      case 'take_over': {
        const claim: HeldClaim = {
          scope,
          key,
          fingerprint,
          token,
          expiresAt: now + request.ttlMs,
          createdAt: now,
          replacesExpiry: row?.expires_at,
        }
        claims.add(id, claim)
        return { kind: 'claimed', takeover: false, lost: ownership.signal }
      }
      case 'replay':
      case 'mismatch':
        // Whichever body asked, the record it read answers the key's next request from memory:
        // a client that keeps retrying with a changed body costs no read either.
        if (view?.state === 'completed') {
          cache.set(id, {
            fingerprint: view.fingerprint,
            response: view.response,
            expiresAt: view.expiresAt,
          })
        }
        return decision
      case 'in_progress':
        return decision
    }
  }

  /** On the write connection: inside the caller's transaction, or in a group commit. */
  function writeCompleted(ref: ClaimRef, claim: HeldClaim, response: StoredResponse): boolean {
    const keyHash = sqliteKeyHash(ref.scope, ref.key)
    if (claim.replacesExpiry !== undefined) {
      deleteExpired.run(keyHash, ref.scope, ref.key, claim.replacesExpiry)
    }
    // Before the insert: a claim that skips its look-up must never miss a committed record.
    keyFilter.add(ref.scope, ref.key)
    const { changes } = insertCompleted.run(
      ref.scope,
      ref.key,
      Buffer.from(claim.fingerprint, 'hex'),
      claim.expiresAt,
      claim.createdAt,
      response.status,
      JSON.stringify(response.headers),
      Buffer.from(response.body.buffer, response.body.byteOffset, response.body.byteLength),
      response.requestId,
      keyHash,
      keyHash,
      ref.scope,
      ref.key,
    )
    // No row: a record was already under the key, and the claim was not ours to complete.
    return changes === 1
  }

  /**
   * Once the record is committed: the claim ends, waiters wake. The cache learns the record
   * when it is first read back (a replay), not here: a read of the file costs a few
   * microseconds, while holding every completion cost each first request its share of the
   * collector's work (an eighth of a first request's CPU, decision 0010), and at a high write
   * rate it held only the last second's keys, which are seldom the ones retried.
   */
  function afterCompleted(id: string, ref: ClaimRef) {
    if (claims.delete(id, ref.token)) listeners.notifyId(id)
  }

  const heldBy = (ref: ClaimRef): { id: string; claim: HeldClaim } | undefined => {
    const held = claims.byToken(ref.token) as { id: string; claim: HeldClaim } | undefined
    // The same token under another (scope, key) is not this claim.
    return held !== undefined && held.claim.scope === ref.scope && held.claim.key === ref.key
      ? held
      : undefined
  }

  return {
    claimLifetime: 'process',
    claim: (request) => connection.read((handle) => claimNow(request, handle)),
    async complete(ref, response, tx) {
      const held = heldBy(ref)
      if (held === undefined || ownership.signal.aborted || closed) return false
      if (tx !== undefined) {
        // Inside the caller's transaction, which already holds the connection. The claim
        // stays held until the transaction commits: a rollback leaves it to be released.
        if (!writeCompleted(ref, held.claim, response)) {
          afterCompleted(held.id, ref)
          return false
        }
        tx.afterCommit(() => {
          afterCompleted(held.id, ref)
        })
        return true
      }
      const written = await connection.write(() => writeCompleted(ref, held.claim, response))
      // The claim ends either way: completed, or not this request's after all (a record was
      // under the key), when it must not hold the key in memory for the life of the process.
      afterCompleted(held.id, ref)
      return written
    },
    release(ref) {
      const held = heldBy(ref)
      const released = held !== undefined && claims.delete(held.id, ref.token)
      if (released) listeners.notifyId(held.id)
      return Promise.resolve(released)
    },
    onSettled: (scope, key, listener) => listeners.subscribe(scope, key, listener),
    purgeExpired: (limit) =>
      connection.exclusive(() => purge.run({ now: clock.now(), limit, window: 4 * limit }).changes),
    get inProgress() {
      return claims.size
    },
    cache: () => cache.stats(),
    keyFilter: () => keyFilter.stats(),
    close() {
      if (closed) return
      closed = true
      keyFilter.close()
      ownership.release()
      listeners.notifyAll()
    },
  }
}

const IN_PROGRESS = { kind: 'in_progress' } as const
const MISMATCH = { kind: 'mismatch' } as const

function toView(row: RecordRow): RecordView {
  return {
    state: 'completed',
    fingerprint: row.fingerprint.toString('hex'),
    expiresAt: row.expires_at,
    response: {
      status: row.status,
      headers: JSON.parse(row.headers) as Record<string, string>,
      body: row.body,
      requestId: row.request_id,
    },
  }
}
