import type { Pool, PoolClient } from 'pg'
import pg from 'pg'
import type { Clock } from '../../core/clock.js'
import type { StoredResponse } from '../../core/record.js'
import type {
  ClaimOutcome,
  ClaimRef,
  ClaimRequest,
  Store,
  StoreTransaction,
} from '../../core/store.js'
import type { CompletedRecord } from '../completed-cache.js'
import { createCompletedCache } from '../completed-cache.js'
import { createSettleListeners, recordId } from '../settle-listeners.js'

/** A transaction on one pooled client, as {@link PostgresStore.complete} joins it. */
export interface PostgresTransaction extends StoreTransaction {
  readonly client: PoolClient
}

export interface PostgresStoreOptions {
  readonly pool: Pool
  /**
   * The table the records live in; created if missing (under an advisory lock, so that
   * instances starting together do not race).
   * @default 'idempotency_records'
   */
  readonly tableName?: string
  /**
   * Lease and expiry arithmetic runs on the database's clock (`clock_timestamp()`), the one
   * clock every instance shares. A clock given here replaces it: for tests only.
   */
  readonly clock?: Clock
  /**
   * Completed records kept in memory for replays. 0 turns the cache off.
   * @default 10_000
   */
  readonly cacheSize?: number
  /**
   * The LISTEN/NOTIFY channel that wakes waiters on every instance.
   * @default 'ticksupply_idempotency'
   */
  readonly channel?: string
  /** Called when the notification connection fails; waiters fall back to polling meanwhile. */
  readonly onListenError?: (error: unknown) => void
}

export interface PostgresStore extends Store<PostgresTransaction> {
  /** Stops listening for notifications. The pool is the caller's to end. */
  close(): Promise<void>
  /** Whether the notification connection is up (waiters are woken across instances). */
  readonly listening: boolean
}

interface ClaimRow {
  inserted: boolean | null
  now_ms: string
  fingerprint: string | null
  state: 'in_progress' | 'completed' | null
  token: string | null
  lease_expires_at: string | null
  expires_at: string | null
  response_status: number | null
  response_headers: Record<string, string> | null
  response_body: Buffer | null
  original_request_id: string | null
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * Idempotency records in PostgreSQL, for several server instances on one database. The claim is
 * one `INSERT ... ON CONFLICT DO NOTHING`; every later change is a single `UPDATE` or `DELETE`
 * whose WHERE clause is the compare-and-set (token, state, lease), on the database's clock.
 * Completions and releases `NOTIFY` in the same statement (or transaction), so waiters on every
 * instance are woken when, and only when, the change commits.
 */
export async function createPostgresStore(options: PostgresStoreOptions): Promise<PostgresStore> {
  const { pool } = options
  const table = options.tableName ?? 'idempotency_records'
  const channel = options.channel ?? 'ticksupply_idempotency'
  for (const [name, value] of [
    ['tableName', table],
    ['channel', channel],
  ] as const) {
    if (!IDENTIFIER.test(value)) {
      throw new TypeError(`Expected \`${name}\` to be a plain SQL identifier, got ${value}.`)
    }
  }
  const clock = options.clock
  const cache = createCompletedCache(options.cacheSize ?? 10_000)
  const listeners = createSettleListeners()

  await ensureSchema(pool, table)

  // $1 is the test clock's time or NULL: then the database's own clock, in epoch milliseconds.
  const NOW = `coalesce($1::bigint, (extract(epoch from clock_timestamp()) * 1000)::bigint)`
  const testNow = (): number | null => (clock === undefined ? null : clock.now())

  // Steps: compute now once; try to insert a fresh claim; read the row as it was before this
  // statement (a row committed by a concurrent claimant after our snapshot reads as absent, and
  // the caller tries again).
  const claimSql = `
    WITH now AS (SELECT ${NOW} AS ms),
    ins AS (
      INSERT INTO ${table} (scope, key, fingerprint, state, token, lease_expires_at, expires_at, created_at)
      SELECT $2, $3, $4, 'in_progress', $5, now.ms + $6::bigint, now.ms + $7::bigint, now.ms FROM now
      ON CONFLICT (scope, key) DO NOTHING
      RETURNING true AS inserted
    )
    SELECT (SELECT inserted FROM ins) AS inserted, (SELECT ms FROM now) AS now_ms,
           r.fingerprint, r.state, r.token, r.lease_expires_at, r.expires_at, r.response_status,
           r.response_headers, r.response_body, r.original_request_id
      FROM (SELECT 1) AS one
      LEFT JOIN ${table} r ON r.scope = $2 AND r.key = $3`

  // An expired record is replaced in place, only if it is still the row we looked at.
  const replaceExpiredSql = `
    UPDATE ${table}
       SET fingerprint = $4, state = 'in_progress', token = $5,
           lease_expires_at = $6::bigint + $7::bigint, expires_at = $6::bigint + $8::bigint,
           created_at = $6::bigint, response_status = NULL, response_headers = NULL,
           response_body = NULL, original_request_id = NULL
     WHERE scope = $1 AND key = $2 AND expires_at = $3::bigint
       AND token IS NOT DISTINCT FROM $9::text`

  // Takeover: an in-progress row whose lease has lapsed, still carrying the token we saw. The
  // record's expiry stays what the first claim set.
  const takeOverSql = `
    UPDATE ${table} SET token = $4, lease_expires_at = $5::bigint + $6::bigint
     WHERE scope = $1 AND key = $2 AND state = 'in_progress' AND token = $3
       AND lease_expires_at <= $5::bigint`

  const renewSql = `
    UPDATE ${table} SET lease_expires_at = ${NOW} + $5::bigint
     WHERE scope = $2 AND key = $3 AND token = $4 AND state = 'in_progress'`

  // Complete and notify in one statement: the notification is sent when the change commits.
  const completeSql = `
    WITH done AS (
      UPDATE ${table}
         SET state = 'completed', token = NULL, lease_expires_at = NULL, response_status = $4,
             response_headers = $5, response_body = $6, original_request_id = $7
       WHERE scope = $1 AND key = $2 AND token = $3 AND state = 'in_progress'
       RETURNING fingerprint, expires_at
    )
    SELECT fingerprint, expires_at, pg_notify('${channel}', $8) FROM done`

  const releaseSql = `
    WITH gone AS (
      DELETE FROM ${table} WHERE scope = $1 AND key = $2 AND token = $3 AND state = 'in_progress'
      RETURNING 1
    )
    SELECT pg_notify('${channel}', $4) FROM gone`

  // Bounded: at most $2 rows per batch; a live lease is never purged.
  const purgeSql = `
    WITH now AS (SELECT ${NOW} AS ms)
    DELETE FROM ${table} WHERE (scope, key) IN (
      SELECT scope, key FROM ${table}, now
       WHERE expires_at <= now.ms AND (state = 'completed' OR lease_expires_at <= now.ms)
       LIMIT $2
    )`

  async function claim(request: ClaimRequest): Promise<ClaimOutcome> {
    const { scope, key, token, fingerprint, leaseMs, ttlMs } = request
    const cached = cache.get(scope, key, clock?.now() ?? Date.now())
    if (cached !== undefined) {
      return cached.fingerprint === fingerprint
        ? { kind: 'replay', response: cached.response }
        : { kind: 'mismatch' }
    }
    for (let round = 0; round < 5; round++) {
      const result = await pool.query<ClaimRow>(claimSql, [
        testNow(),
        scope,
        key,
        fingerprint,
        token,
        leaseMs,
        ttlMs,
      ])
      const row = result.rows[0]
      if (row === undefined) throw new Error('claim returned no row')
      if (row.inserted === true) return { kind: 'claimed', takeover: false }
      if (row.state === null || row.expires_at === null || row.fingerprint === null) continue
      const now = Number(row.now_ms)
      const expiresAt = Number(row.expires_at)
      const leaseLive = row.state === 'in_progress' && Number(row.lease_expires_at) > now
      if (expiresAt <= now && !leaseLive) {
        const replaced = await pool.query(replaceExpiredSql, [
          scope,
          key,
          row.expires_at,
          fingerprint,
          token,
          now,
          leaseMs,
          ttlMs,
          row.token,
        ])
        if (replaced.rowCount === 1) return { kind: 'claimed', takeover: false }
        continue
      }
      if (row.fingerprint !== fingerprint) return { kind: 'mismatch' }
      if (row.state === 'completed') {
        const response: StoredResponse = {
          status: row.response_status ?? 0,
          headers: row.response_headers ?? {},
          body: row.response_body ?? Buffer.alloc(0),
          requestId: row.original_request_id ?? '',
        }
        cache.set(scope, key, { fingerprint: row.fingerprint, response, expiresAt })
        return { kind: 'replay', response }
      }
      if (leaseLive) return { kind: 'in_progress' }
      const taken = await pool.query(takeOverSql, [scope, key, row.token, token, now, leaseMs])
      if (taken.rowCount === 1) return { kind: 'claimed', takeover: true }
    }
    throw new Error(`Claim of an idempotency key kept losing races in ${table}`)
  }

  async function complete(
    ref: ClaimRef,
    response: StoredResponse,
    tx?: PostgresTransaction,
  ): Promise<boolean> {
    const executor = tx?.client ?? pool
    const result = await executor.query<{ fingerprint: string; expires_at: string }>(completeSql, [
      ref.scope,
      ref.key,
      ref.token,
      response.status,
      JSON.stringify(response.headers),
      Buffer.from(response.body.buffer, response.body.byteOffset, response.body.byteLength),
      response.requestId,
      recordId(ref.scope, ref.key),
    ])
    const row = result.rows[0]
    if (row === undefined) return false
    const record: CompletedRecord = {
      fingerprint: row.fingerprint,
      response,
      expiresAt: Number(row.expires_at),
    }
    // Local waiters are woken by the notification too; the cache is filled once it committed.
    if (tx === undefined) {
      cache.set(ref.scope, ref.key, record)
    } else {
      tx.afterCommit(() => {
        cache.set(ref.scope, ref.key, record)
      })
    }
    return true
  }

  const listener = startListener(options, channel, (id) => {
    listeners.notifyId(id)
  })
  await listener.ready

  return {
    claim,
    async renew(ref, leaseMs) {
      const result = await pool.query(renewSql, [testNow(), ref.scope, ref.key, ref.token, leaseMs])
      return result.rowCount === 1
    },
    complete,
    async release(ref) {
      const result = await pool.query(releaseSql, [
        ref.scope,
        ref.key,
        ref.token,
        recordId(ref.scope, ref.key),
      ])
      return result.rowCount === 1
    },
    onSettled: (scope, key, fn) => listeners.subscribe(scope, key, fn),
    async purgeExpired(limit) {
      const result = await pool.query(purgeSql, [testNow(), limit])
      return result.rowCount ?? 0
    },
    get listening() {
      return listener.connected
    },
    close: () => listener.stop(),
  }
}

async function ensureSchema(pool: Pool, table: string): Promise<void> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    // Instances that start together would otherwise race on CREATE TABLE IF NOT EXISTS.
    await client.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`ticksupply schema ${table}`])
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${table} (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('in_progress', 'completed')),
        token TEXT,
        lease_expires_at BIGINT,
        expires_at BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        response_status INTEGER,
        response_headers JSONB,
        response_body BYTEA,
        original_request_id TEXT,
        PRIMARY KEY (scope, key),
        CHECK ((state = 'in_progress') = (token IS NOT NULL AND lease_expires_at IS NOT NULL)),
        CHECK ((state = 'completed') = (response_status IS NOT NULL))
      )`)
    await client.query(`CREATE INDEX IF NOT EXISTS ${table}_expires_at ON ${table} (expires_at)`)
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  } finally {
    client.release()
  }
}

interface Listener {
  readonly ready: Promise<void>
  readonly connected: boolean
  stop(): Promise<void>
}

/**
 * One dedicated connection that LISTENs, reconnecting with backoff when it drops. While it is
 * down, waiters are not woken by notifications and fall back to their poll.
 */
function startListener(
  options: PostgresStoreOptions,
  channel: string,
  onNotify: (id: string) => void,
): Listener {
  let client: pg.Client | undefined
  let connected = false
  let stopped = false
  let retryTimer: NodeJS.Timeout | undefined
  let attempt = 0

  const connect = async (): Promise<void> => {
    const next = new pg.Client(options.pool.options)
    next.on('notification', (message) => {
      if (message.channel === channel && message.payload !== undefined) onNotify(message.payload)
    })
    next.on('error', (error) => {
      options.onListenError?.(error)
      connected = false
      scheduleReconnect()
    })
    next.on('end', () => {
      connected = false
      scheduleReconnect()
    })
    client = next
    await next.connect()
    await next.query(`LISTEN ${channel}`)
    connected = true
    attempt = 0
  }

  const scheduleReconnect = () => {
    if (stopped || retryTimer !== undefined) return
    const old = client
    client = undefined
    old?.removeAllListeners()
    void old?.end().catch(() => undefined)
    const delayMs = Math.min(5_000, 100 * 2 ** attempt++)
    retryTimer = setTimeout(() => {
      retryTimer = undefined
      connect().catch((error: unknown) => {
        options.onListenError?.(error)
        scheduleReconnect()
      })
    }, delayMs)
    retryTimer.unref()
  }

  return {
    ready: connect(),
    get connected() {
      return connected
    },
    async stop() {
      stopped = true
      clearTimeout(retryTimer)
      connected = false
      const current = client
      client = undefined
      current?.removeAllListeners()
      await current?.end().catch(() => undefined)
    },
  }
}
