import { createHash, randomUUID } from 'node:crypto'
import type { Pool, PoolClient } from 'pg'
import type { Clock } from '../../core/clock.js'
import type { StoredResponse } from '../../core/record.js'
import type {
  ClaimOutcome,
  ClaimRef,
  ClaimRequest,
  Store,
  StoreTransaction,
} from '../../core/store.js'
import { createBatcher } from '../batcher.js'
import type { RecordView } from '../claim-decision.js'
import { decideClaim } from '../claim-decision.js'
import type { CompletedCacheOptions, CompletedCacheStats } from '../completed-cache.js'
import { createCompletedCache } from '../completed-cache.js'
import { createLocalClaims } from '../local-claims.js'
import { createSettleListeners, recordId } from '../settle-listeners.js'
import type { Epoch } from './postgres-instance.js'
import { DATABASE_NOW_SQL, lockNamespaceSql, startInstanceLiveness } from './postgres-instance.js'
import { ensurePostgresSchema } from './postgres-schema.js'
import { trackTableStatistics } from './postgres-statistics.js'

/** A transaction on one pooled client, as {@link PostgresStore.complete} joins it. */
export interface PostgresTransaction extends StoreTransaction {
  readonly client: PoolClient
}

export interface PostgresStoreOptions extends CompletedCacheOptions {
  readonly pool: Pool
  /**
   * The table the records live in (and `<table>_instances` beside it); created if missing
   * (under an advisory lock, so that instances starting together do not race).
   * @default 'idempotency_records'
   */
  readonly tableName?: string
  /**
   * Lease and expiry arithmetic runs on the database's clock (`clock_timestamp()`), the one
   * clock every instance shares. A clock given here replaces it: for tests only.
   */
  readonly clock?: Clock
  /**
   * How long this instance vouches for its claims without renewing (it renews every third of
   * it). A machine that vanishes without closing its connections frees its keys within this;
   * a process that dies frees them at once.
   * @default 30_000
   */
  readonly leaseMs?: number
  /**
   * The LISTEN/NOTIFY channel that wakes waiters on every instance.
   * @default 'ticksupply_idempotency'
   */
  readonly channel?: string
  /**
   * Commit each claim batch only once it is on disk (`synchronous_commit = on`), as the
   * completions always are. On by default.
   *
   * Turning it off lets a claim's commit return before its fsync, and loses little: a claim is
   * alive only while its instance's session holds the instance lock, and a database crash (the
   * one event that loses a commit not yet on disk) ends every session, so every claim in
   * progress at a crash is free to take over afterwards, durable or not. What a durable claim
   * keeps is the key's fingerprint: a retry after the crash with a different body under the
   * same key answers 409 instead of running. A completion is durable either way, and the WAL's
   * order means a durable completion implies its claim. Off, it measured 4% more first
   * requests a second on this project's handler benchmark, within the noise: the batches
   * already share each fsync among their claims. See docs/decisions/0012.
   * @default true
   */
  readonly durableClaims?: boolean
  /** Called when the instance's connection fails; claims fail closed until it is back. */
  readonly onListenError?: (error: unknown) => void
}

export interface PostgresStore extends Store<PostgresTransaction> {
  /** Stops listening, gives this instance's claims up, closes its own connections. */
  close(): Promise<void>
  /** Whether the instance's connection is up (claims granted, waiters woken across instances). */
  readonly listening: boolean
  /** Claims this instance holds right now. */
  readonly inProgress: number
  readonly cache: () => CompletedCacheStats
}

/** A key the claim statement inserted, by the token it carries: it is this request's now. */
interface InsertedRow {
  token: string
  now_ms: string
}

/** A key the claim statement found taken, as the look-up after it reads the row. */
interface RecordRow {
  n: string
  now_ms: string
  fingerprint: string | null
  state: 'in_progress' | 'completed' | null
  token: string | null
  expires_at: string | null
  holder_alive: boolean | null
  response_status: number | null
  response_headers: Record<string, string> | null
  response_body: Buffer | null
  original_request_id: string | null
}

interface SettledRow {
  n: string
  fingerprint: string
  expires_at: string
  now_ms: string
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/
const ORIGIN_PREFIX = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12} /
/**
 * Which notification each record id of a batch goes in: consecutive ids while their payload
 * (ids joined by newlines, after the 37-character origin) stays under PostgreSQL's 8000 bytes.
 * A record id holds no newline: a key is at most 128 characters of a UUID form, a scope is the
 * application's account id.
 */
/** A named statement: each connection parses and plans it once. */
function prepared(text: string): { readonly name: string; readonly text: string } {
  return { name: `ticksupply_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`, text }
}

function notificationChunks(ids: readonly string[]): number[] {
  const chunks: number[] = []
  let chunk = 0
  let bytes = 37
  for (const id of ids) {
    const size = Buffer.byteLength(id) + 1
    if (bytes + size > 7_900) {
      chunk++
      bytes = 37
    }
    bytes += size
    chunks.push(chunk)
  }
  return chunks
}

/**
 * Claim (and completion) batches each store keeps on the wire at once. With one, a batch's
 * round trip is dead time for the requests that arrive meanwhile; with two, the next batch
 * travels while the first one's commit waits. Measured on the handler benchmark: about 5% more
 * first requests per second and 8% less CPU per request than one; overlapping batches are
 * safe because a claim statement takes its keys in key order (see `claimSql`).
 */
const BATCHES_IN_FLIGHT = 2

/** A claim the batch could not decide (a concurrent claimant's row changed under it). */
const AGAIN = Symbol('again')
/** A claim whose statement failed: its request fails, the rest of its batch does not. */
class ClaimFailed {
  readonly error: unknown
  constructor(error: unknown) {
    this.error = error
  }
}
type BatchAnswer = ClaimOutcome | typeof AGAIN | ClaimFailed
/**
 * Claims in doubt this process keeps giving back, at most; beyond it the oldest are left to
 * their epoch's end. Each one is a request that answered 503 while its statement went on.
 */
const MAX_IN_DOUBT = 10_000
const IN_PROGRESS = { kind: 'in_progress' } as const
const MISMATCH = { kind: 'mismatch' } as const

/**
 * Idempotency records in PostgreSQL, for several server instances on one database.
 *
 * A claim is a row that points to the instance holding it; the instance vouches for all its
 * claims at once (see `startInstanceLiveness`), so a claim has no lease and no timer of its own,
 * and a process that dies frees its keys as soon as the database notices the closed
 * connection. Claims, completions and releases made in one turn of the event loop share one
 * statement and one commit. Every change is compare-and-set on the claim token, on the
 * database's clock; completions and releases `NOTIFY` in the same statement (or transaction),
 * so waiters on every instance are woken when, and only when, the change commits.
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
  const leaseMs = options.leaseMs ?? 30_000
  if (!Number.isSafeInteger(leaseMs) || leaseMs < 30) {
    throw new TypeError(
      `Expected \`leaseMs\` to be an integer of at least 30, got ${String(leaseMs)}.`,
    )
  }
  const clock = options.clock
  const cache = createCompletedCache(options)
  const listeners = createSettleListeners()
  const claims = createLocalClaims()
  /** Which epoch granted each local claim, so that an epoch's end drops its claims. */
  const epochOf = new Map<string, Epoch>()

  await ensurePostgresSchema(pool, table)
  const statistics = await trackTableStatistics(pool, table)

  // $1 is the test clock's time or NULL: then the database's own clock, in epoch milliseconds.
  const NOW = `coalesce($1::bigint, (extract(epoch from clock_timestamp()) * 1000)::bigint)`
  const testNow = (): number | null => (clock === undefined ? null : clock.now())
  // The database's clock as this process estimates it, from the latest statement that read it:
  // the estimate runs slightly ahead (it includes the trip there), so a cached record is never
  // served past its expiry.
  let clockOffsetMs = 0
  const dbNow = (): number => clock?.now() ?? Date.now() + clockOffsetMs
  const learnClock = (nowMs: string, sentAt: number) => {
    if (clock === undefined) clockOffsetMs = Number(nowMs) - sentAt
  }
  const instances = `${table}_instances`
  // Notifications carry who sent them: `<origin> <record id>`.
  const origin = `${randomUUID()} `

  // Whether the holder of a row in progress is alive: its instance's lease has not lapsed
  // and its session still holds the instance lock (rows of an earlier version: their own
  // lease). On the database's real clock, whatever clock drives expiry.
  const holderAlive = (r: string, inst: string) => `
    CASE WHEN ${r}.state <> 'in_progress' THEN NULL
         WHEN ${r}.instance_id IS NULL THEN ${r}.lease_expires_at > ${DATABASE_NOW_SQL}
         ELSE coalesce(${inst}.lease_expires_at > ${DATABASE_NOW_SQL}, false) AND EXISTS (
           SELECT 1 FROM pg_locks l
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid = ${lockNamespaceSql(table)}::oid AND l.objid = ${inst}.lock_key::oid)
    END`

  // The claim statement inserts a fresh claim for every key of the batch that has no row, and
  // returns the keys it inserted: on a first request, the one statement. The keys it found
  // taken are read by a second statement (`lookUpSql`), which only replays that missed the
  // cache, duplicates and takeovers need. One statement that also read the rows it did not
  // insert cost the database about twice the insert alone: its custom plan, made again for
  // every batch (the generic one joined the batch to the whole table), and its joins.
  // With `durableClaims: false`, the statement's own transaction commits without waiting for
  // the disk: `set_config(..., true)` lasts until that commit, so it never reaches the
  // application's statements on the connection, and needs no startup option a pooler such as
  // PgBouncer would refuse.
  const asyncCommit =
    options.durableClaims !== false ? '' : `, set_config('synchronous_commit', 'off', true)`
  const claimSql = `
    WITH now AS (SELECT ${NOW} AS ms${asyncCommit})
    INSERT INTO ${table} AS r (scope, key, fingerprint, state, token, instance_id, expires_at, created_at)
    SELECT i.scope, i.key, i.fingerprint, 'in_progress', i.token, $7, now.ms + i.ttl_ms, now.ms
      FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
             AS i(scope, key, fingerprint, token, ttl_ms), now
      -- In key order, so that two statements claiming overlapping keys (two batches, or two
      -- instances) wait for each other instead of deadlocking.
      ORDER BY i.scope, i.key
    ON CONFLICT (scope, key) DO NOTHING
    RETURNING r.token, r.created_at AS now_ms`

  // Each key's row as it is now, with whether its holder is alive. A row gone since the claim
  // statement found it (completed and purged, or released) reads as absent, and that claim is
  // tried again.
  const lookUpSql = `
    WITH now AS (SELECT ${NOW} AS ms)
    SELECT i.n, now.ms AS now_ms,
           r.fingerprint, r.state, r.token, r.expires_at, ${holderAlive('r', 'inst')} AS holder_alive,
           r.response_status, r.response_headers, r.response_body, r.original_request_id
      FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS i(scope, key, n)
     CROSS JOIN now
      LEFT JOIN ${table} r ON r.scope = i.scope AND r.key = i.key
      LEFT JOIN ${instances} inst ON inst.id = r.instance_id
     ORDER BY i.n`

  // An expired record is replaced in place, only if it is still the row we looked at.
  const replaceExpiredSql = `
    UPDATE ${table}
       SET fingerprint = $4, state = 'in_progress', token = $5, instance_id = $9,
           lease_expires_at = NULL, expires_at = $6::bigint + $7::bigint, created_at = $6::bigint,
           response_status = NULL, response_headers = NULL, response_body = NULL,
           original_request_id = NULL
     WHERE scope = $1 AND key = $2 AND expires_at = $3::bigint
       AND token IS NOT DISTINCT FROM $8::text`

  // Takeover: a claim whose holder died, still carrying the token we saw. The record's expiry
  // stays what the first claim set.
  const takeOverSql = `
    UPDATE ${table} SET token = $4, instance_id = $5, lease_expires_at = NULL
     WHERE scope = $1 AND key = $2 AND state = 'in_progress' AND token = $3`

  // Complete and notify in one statement: the notification goes out when the change commits.
  const completeSql = `
    WITH now AS (SELECT ${NOW} AS ms),
    input AS (
      SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::jsonb[], $7::bytea[],
                           $8::text[], $9::text[], $11::int[])
        WITH ORDINALITY AS i(scope, key, token, status, headers, body, request_id, id, chunk, n)
    ),
    done AS (
      UPDATE ${table} r
         SET state = 'completed', token = NULL, instance_id = NULL, lease_expires_at = NULL,
             response_status = i.status, response_headers = i.headers, response_body = i.body,
             original_request_id = i.request_id
        FROM input i
       WHERE r.scope = i.scope AND r.key = i.key AND r.token = i.token AND r.state = 'in_progress'
      RETURNING i.n, i.id, i.chunk, r.fingerprint, r.expires_at
    ),
    -- One notification per chunk of the batch (a payload holds up to 8000 bytes), not one per
    -- record: every instance hears every notification.
    notified AS (
      SELECT pg_notify('${channel}', $10 || string_agg(done.id, E'\n')) FROM done GROUP BY done.chunk
    )
    SELECT done.n, done.fingerprint, done.expires_at, now.ms AS now_ms,
           (SELECT count(*) FROM notified) AS notifications
      FROM done, now`

  const releaseSql = `
    WITH input AS (
      SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::int[])
        WITH ORDINALITY AS i(scope, key, token, id, chunk, n)
    ),
    gone AS (
      DELETE FROM ${table} r USING input i
       WHERE r.scope = i.scope AND r.key = i.key AND r.token = i.token AND r.state = 'in_progress'
      RETURNING i.n, i.id, i.chunk
    ),
    notified AS (
      SELECT pg_notify('${channel}', $5 || string_agg(gone.id, E'\n')) FROM gone GROUP BY gone.chunk
    )
    SELECT gone.n, (SELECT count(*) FROM notified) AS notifications FROM gone`

  // Whether a row's holder is gone for good as far as purging goes: its instance's lease
  // lapsed or its instance row is gone (rows of an earlier version: their own lease lapsed).
  const holderGone = (r: string) => `
    CASE WHEN ${r}.instance_id IS NULL THEN ${r}.lease_expires_at <= ${DATABASE_NOW_SQL}
         ELSE NOT EXISTS (SELECT 1 FROM ${instances} i
                           WHERE i.id = ${r}.instance_id
                             AND i.lease_expires_at > ${DATABASE_NOW_SQL})
    END`
  // Bounded: at most $2 rows per batch. The rows are locked as they are picked (skipping any a
  // claimant holds), and the DELETE checks expiry and the holder again on the row version it
  // deletes: a record claimed or completed anew after it expired has a new expiry and survives.
  // Instances dead for ten leases are forgotten.
  const purgeSql = `
    WITH now AS (SELECT ${NOW} AS ms),
    doomed AS (
      SELECT r.scope, r.key FROM ${table} r, now
       WHERE r.expires_at <= now.ms AND (r.state = 'completed' OR ${holderGone('r')})
       LIMIT $2
       FOR UPDATE OF r SKIP LOCKED
    ),
    gone AS (
      DELETE FROM ${table} r USING doomed, now
       WHERE r.scope = doomed.scope AND r.key = doomed.key
         AND r.expires_at <= now.ms AND (r.state = 'completed' OR ${holderGone('r')})
      RETURNING 1
    ),
    forgotten AS (
      DELETE FROM ${instances} i WHERE i.lease_expires_at < ${DATABASE_NOW_SQL} - 10 * $3::bigint
    )
    SELECT count(*)::int AS deleted FROM gone`

  // Prepared once per connection, by name: the batch statements are long CTEs, and parsing and
  // planning them again for every batch would cost the database more than the batch itself.
  const claimQuery = prepared(claimSql)
  const lookUpQuery = prepared(lookUpSql)
  const replaceExpiredQuery = prepared(replaceExpiredSql)
  const takeOverQuery = prepared(takeOverSql)
  const completeQuery = prepared(completeSql)
  const releaseQuery = prepared(releaseSql)

  const liveness = await startInstanceLiveness({
    poolConfig: pool.options,
    table,
    channel,
    leaseMs,
    onNotify: (payload) => {
      // Our own changes woke our waiters already, without the round trip.
      if (payload.startsWith(origin)) return
      // `<origin uuid> <record id>\n<record id>...`; the first version sent one id alone.
      if (!ORIGIN_PREFIX.test(payload)) {
        listeners.notifyId(payload)
        return
      }
      for (const id of payload.slice(37).split('\n')) listeners.notifyId(id)
    },
    ...(options.onListenError === undefined ? {} : { onError: options.onListenError }),
  })

  interface ClaimItem {
    readonly request: ClaimRequest
    readonly id: string
  }

  const claimBatcher = createBatcher<ClaimItem, BatchAnswer>(runClaims, {
    maxInFlight: BATCHES_IN_FLIGHT,
  })

  async function runClaims(items: readonly ClaimItem[]): Promise<BatchAnswer[]> {
    const epoch = liveness.current()
    if (epoch === undefined) {
      throw new Error('the idempotency store instance is not live: its database connection is down')
    }
    const results = new Array<BatchAnswer>(items.length)
    // One row per key in the statement: the key's other requests in the batch follow its
    // leader's answer (see `settle`).
    const leaders: number[] = []
    const leaderOf = new Map<string, number>()
    const followers = new Map<number, number[]>()
    items.forEach((item, index) => {
      const early = answerLocally(item)
      if (early !== undefined) {
        results[index] = early
        return
      }
      const leader = leaderOf.get(item.id)
      if (leader === undefined) {
        leaderOf.set(item.id, index)
        leaders.push(index)
        return
      }
      const group = followers.get(leader)
      if (group === undefined) followers.set(leader, [index])
      else group.push(index)
    })
    const settle = (index: number, answer: BatchAnswer, view?: RecordView, now = 0) => {
      results[index] = answer
      const group = followers.get(index)
      if (group === undefined) return
      const { fingerprint } = (items[index] as ClaimItem).request
      for (const follower of group) {
        const other = (items[follower] as ClaimItem).request.fingerprint
        results[follower] =
          other === fingerprint
            ? // The same request: the leader's claim is held now, the duplicate sees it so.
              answer !== AGAIN && !(answer instanceof ClaimFailed) && answer.kind === 'claimed'
              ? IN_PROGRESS
              : answer
            : answerOtherBody(answer, other, view, now)
      }
    }
    if (leaders.length === 0) return results
    const batch = leaders.map((index) => items[index] as ClaimItem)
    const sentAt = Date.now()
    let inserted
    try {
      inserted = await pool.query<InsertedRow>({
        ...claimQuery,
        values: [
          testNow(),
          batch.map((item) => item.request.scope),
          batch.map((item) => item.request.key),
          batch.map((item) => item.request.fingerprint),
          batch.map((item) => item.request.token),
          batch.map((item) => item.request.ttlMs),
          epoch.instanceId,
        ],
      })
    } catch (error) {
      // The statement may have reached the database, and may still commit.
      doubt(batch, epoch)
      for (const index of leaders) settle(index, new ClaimFailed(error))
      return results
    }
    const { rows } = inserted
    const first = rows[0]
    if (first !== undefined) learnClock(first.now_ms, sentAt)
    statistics.inserted(rows.length)
    // By token, which comes back from the database exactly as it went: a scope or key need not.
    const insertedAt = new Map<string, number>()
    for (const row of rows) insertedAt.set(row.token, Number(row.now_ms))
    const taken: number[] = []
    for (const index of leaders) {
      const item = items[index] as ClaimItem
      const now = insertedAt.get(item.request.token)
      if (now === undefined) taken.push(index)
      else settle(index, hold(item, epoch, now + item.request.ttlMs, false))
    }
    if (taken.length === 0) return results
    let lookUp
    try {
      lookUp = await pool.query<RecordRow>({
        ...lookUpQuery,
        values: [
          testNow(),
          taken.map((index) => (items[index] as ClaimItem).request.scope),
          taken.map((index) => (items[index] as ClaimItem).request.key),
        ],
      })
    } catch (error) {
      // A read: it changed nothing, and only the keys it was for fail.
      for (const index of taken) settle(index, new ClaimFailed(error))
      return results
    }
    await Promise.all(
      taken.map(async (index, position) => {
        const item = items[index] as ClaimItem
        const row = lookUp.rows[position]
        const view = row === undefined ? undefined : toView(row)
        if (row === undefined || view === undefined) {
          settle(index, AGAIN)
          return
        }
        try {
          settle(index, await decide(item, row, view, epoch), view, Number(row.now_ms))
        } catch (error) {
          doubt([item], epoch)
          settle(index, new ClaimFailed(error))
        }
      }),
    )
    return results
  }

  /**
   * A request in the batch under the same key as its leader, with another body. What the
   * leader's answer says of the row decides it: a row the leader holds, waits for or replays
   * carries the leader's body; one the leader mismatched is judged again for this body.
   */
  function answerOtherBody(
    answer: BatchAnswer,
    fingerprint: string,
    view: RecordView | undefined,
    now: number,
  ): BatchAnswer {
    if (answer === AGAIN || answer instanceof ClaimFailed) return answer
    if (answer.kind !== 'mismatch') return MISMATCH
    if (view === undefined) return AGAIN
    const decision = decideClaim(view, fingerprint, now)
    // Claiming the row (its holder died, and this is its body) is the next batch's to do.
    return decision.kind === 'fresh' || decision.kind === 'take_over' ? AGAIN : decision
  }

  // Claims whose statement failed after it may have reached the database (a connection that
  // broke, a client-side timeout): it may still commit them after their requests answered
  // 503, and nothing would ever complete or release them while this instance lives. They are
  // given back at once and at each epoch check after, until a release finds them, their epoch
  // ends (its rows are dead to every instance then) or ten leases pass.
  const inDoubt = new Map<string, { ref: ClaimRef; id: string; epoch: Epoch; until: number }>()
  const doubt = (batch: readonly ClaimItem[], epoch: Epoch) => {
    const until = Date.now() + 10 * leaseMs
    for (const { request, id } of batch) {
      const { scope, key, token } = request
      inDoubt.set(token, { ref: { scope, key, token }, id, epoch, until })
    }
    for (const token of inDoubt.keys()) {
      if (inDoubt.size <= MAX_IN_DOUBT) break
      inDoubt.delete(token)
    }
    void releaseInDoubt()
  }
  let releasingInDoubt = false
  async function releaseInDoubt(): Promise<void> {
    if (releasingInDoubt || inDoubt.size === 0) return
    releasingInDoubt = true
    try {
      const now = Date.now()
      for (const [token, entry] of inDoubt) {
        if (entry.epoch.signal.aborted || entry.until <= now) inDoubt.delete(token)
      }
      await Promise.all(
        [...inDoubt].map(async ([token, { ref, id }]) => {
          const released = await releaseBatcher.push({ ref, id }).catch(() => false)
          if (released) inDoubt.delete(token)
        }),
      )
    } finally {
      releasingInDoubt = false
    }
  }

  /** What this process knows without asking: its own claims, and cached completions. */
  function answerLocally({ request, id }: ClaimItem): ClaimOutcome | undefined {
    const held = claims.get(id)
    if (held !== undefined) return held.fingerprint === request.fingerprint ? IN_PROGRESS : MISMATCH
    const cached = cache.get(id, dbNow())
    if (cached === undefined) return undefined
    return cached.fingerprint === request.fingerprint
      ? { kind: 'replay', response: cached.response }
      : MISMATCH
  }

  function hold(
    item: ClaimItem,
    epoch: Epoch,
    expiresAt: number,
    takeover: boolean,
  ): ClaimOutcome | typeof AGAIN {
    // The epoch ended while the statement ran: its row counts as dead, and the next round
    // takes it over under the new epoch (or fails closed while there is none).
    if (epoch.signal.aborted) return AGAIN
    const { scope, key, fingerprint, token } = item.request
    claims.add(item.id, { scope, key, fingerprint, token, expiresAt })
    epochOf.set(item.id, epoch)
    return { kind: 'claimed', takeover, lost: epoch.signal, vouches: epoch.vouches }
  }

  async function decide(
    item: ClaimItem,
    row: RecordRow,
    view: RecordView,
    epoch: Epoch,
  ): Promise<ClaimOutcome | typeof AGAIN> {
    const { request } = item
    const now = Number(row.now_ms)
    const decision = decideClaim(view, request.fingerprint, now)
    switch (decision.kind) {
      case 'fresh': {
        const replaced = await pool.query({
          ...replaceExpiredQuery,
          values: [
            request.scope,
            request.key,
            row.expires_at,
            request.fingerprint,
            request.token,
            now,
            request.ttlMs,
            row.token,
            epoch.instanceId,
          ],
        })
        return replaced.rowCount === 1 ? hold(item, epoch, now + request.ttlMs, false) : AGAIN
      }
      case 'take_over': {
        const taken = await pool.query({
          ...takeOverQuery,
          values: [request.scope, request.key, row.token, request.token, epoch.instanceId],
        })
        return taken.rowCount === 1 ? hold(item, epoch, view.expiresAt, true) : AGAIN
      }
      case 'replay':
      case 'mismatch':
        // Whichever body asked, the completed record answers the key's next request from
        // memory: a client that keeps retrying with a changed body costs no round trip either.
        if (view.state === 'completed') {
          cache.set(item.id, {
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

  async function claim(request: ClaimRequest): Promise<ClaimOutcome> {
    const item: ClaimItem = { request, id: recordId(request.scope, request.key) }
    const early = answerLocally(item)
    if (early !== undefined) return early
    // A few rounds at most: each one means another claimant changed the row meanwhile.
    for (let round = 0; round < 5; round++) {
      const outcome = await claimBatcher.push(item)
      if (outcome instanceof ClaimFailed) throw outcome.error
      if (outcome !== AGAIN) return outcome
    }
    throw new Error(`Claim of an idempotency key kept losing races in ${table}`)
  }

  /** The claim ends here: it is no longer this process's to hold. */
  const forget = (id: string, token: string) => {
    if (claims.delete(id, token)) epochOf.delete(id)
  }

  interface SettleItem {
    readonly ref: ClaimRef
    readonly id: string
    readonly response: StoredResponse
  }

  /** Runs the completion statement for `items` on `executor`; resolves which were ours. */
  async function completeOn(
    executor: Pool | PoolClient,
    items: readonly SettleItem[],
  ): Promise<(SettledRow | undefined)[]> {
    const sentAt = Date.now()
    const { rows } = await executor.query<SettledRow>({
      ...completeQuery,
      values: [
        testNow(),
        items.map((item) => item.ref.scope),
        items.map((item) => item.ref.key),
        items.map((item) => item.ref.token),
        items.map((item) => item.response.status),
        items.map((item) => JSON.stringify(item.response.headers)),
        items.map((item) =>
          Buffer.from(
            item.response.body.buffer,
            item.response.body.byteOffset,
            item.response.body.byteLength,
          ),
        ),
        items.map((item) => item.response.requestId),
        items.map((item) => item.id),
        origin,
        notificationChunks(items.map((item) => item.id)),
      ],
    })
    const first = rows[0]
    if (first !== undefined) learnClock(first.now_ms, sentAt)
    const byPosition = new Map(rows.map((row) => [Number(row.n) - 1, row]))
    return items.map((_, index) => byPosition.get(index))
  }

  /** Once a completion has committed: the cache learns it, the claim ends, local waiters wake. */
  const afterCompleted = (item: SettleItem, row: SettledRow) => {
    cache.set(item.id, {
      fingerprint: row.fingerprint,
      response: item.response,
      expiresAt: Number(row.expires_at),
    })
    forget(item.id, item.ref.token)
    listeners.notifyId(item.id)
  }

  const completeBatcher = createBatcher<SettleItem, boolean>(
    async (items) => {
      const rows = await completeOn(pool, items)
      return items.map((item, index) => {
        const row = rows[index]
        if (row === undefined) {
          forget(item.id, item.ref.token)
          return false
        }
        afterCompleted(item, row)
        return true
      })
    },
    { maxInFlight: BATCHES_IN_FLIGHT },
  )

  const releaseBatcher = createBatcher<{ ref: ClaimRef; id: string }, boolean>(async (items) => {
    const { rows } = await pool.query<{ n: string }>({
      ...releaseQuery,
      values: [
        items.map((item) => item.ref.scope),
        items.map((item) => item.ref.key),
        items.map((item) => item.ref.token),
        items.map((item) => item.id),
        origin,
        notificationChunks(items.map((item) => item.id)),
      ],
    })
    const released = new Set(rows.map((row) => Number(row.n) - 1))
    return items.map((item, index) => {
      if (released.has(index)) listeners.notifyId(item.id)
      return released.has(index)
    })
  })

  // An epoch that ended takes its claims with it: they are lost, not held.
  const dropClaimsOf = (ended: Epoch) => {
    for (const [id, epoch] of epochOf) {
      if (epoch !== ended) continue
      epochOf.delete(id)
      const held = claims.get(id)
      if (held !== undefined) claims.delete(id, held.token)
    }
  }
  let watched: Epoch | undefined
  const watchEpoch = () => {
    const epoch = liveness.current()
    if (epoch === undefined || epoch === watched) return
    watched = epoch
    epoch.signal.addEventListener(
      'abort',
      () => {
        dropClaimsOf(epoch)
      },
      { once: true },
    )
  }
  watchEpoch()
  const epochWatcher = setInterval(
    () => {
      watchEpoch()
      void releaseInDoubt()
    },
    Math.max(100, Math.floor(leaseMs / 6)),
  )
  epochWatcher.unref()

  return {
    claimLifetime: 'instance',
    async claim(request) {
      watchEpoch()
      return claim(request)
    },
    async complete(ref, response, tx) {
      const item: SettleItem = { ref, id: recordId(ref.scope, ref.key), response }
      if (tx === undefined) return completeBatcher.push(item)
      const [row] = await completeOn(tx.client, [item])
      if (row === undefined) return false
      tx.afterCommit(() => {
        afterCompleted(item, row)
      })
      return true
    },
    async release(ref) {
      const id = recordId(ref.scope, ref.key)
      // Whatever the database says, the claim is over for this process.
      forget(id, ref.token)
      return releaseBatcher.push({ ref, id })
    },
    onSettled: (scope, key, fn) => listeners.subscribe(scope, key, fn),
    async purgeExpired(limit) {
      const result = await pool.query<{ deleted: number }>(purgeSql, [testNow(), limit, leaseMs])
      return result.rows[0]?.deleted ?? 0
    },
    get listening() {
      return liveness.listening
    },
    get inProgress() {
      return claims.size
    },
    cache: () => cache.stats(),
    async close() {
      clearInterval(epochWatcher)
      await statistics.settle()
      await liveness.stop()
    },
  }
}

function toView(row: RecordRow): RecordView | undefined {
  if (row.state === null || row.fingerprint === null || row.expires_at === null) return undefined
  if (row.state === 'in_progress') {
    return {
      state: 'in_progress',
      fingerprint: row.fingerprint,
      expiresAt: Number(row.expires_at),
      holderAlive: row.holder_alive === true,
    }
  }
  return {
    state: 'completed',
    fingerprint: row.fingerprint,
    expiresAt: Number(row.expires_at),
    response: {
      status: row.response_status ?? 0,
      headers: row.response_headers ?? {},
      body: row.response_body ?? Buffer.alloc(0),
      requestId: row.original_request_id ?? '',
    },
  }
}
