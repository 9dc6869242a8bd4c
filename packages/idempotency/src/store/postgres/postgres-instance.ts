import { randomInt, randomUUID } from 'node:crypto'
import pg from 'pg'
import type { PoolConfig } from 'pg'

/**
 * One store instance's liveness, which every claim it grants points to, so that no claim needs
 * a lease or a timer of its own.
 *
 * The instance holds one dedicated connection (it also LISTENs for completions) on which it
 * takes a session advisory lock, and it renews one row in the instances table every third of
 * the lease. Another instance may take a claim over when the holder's lock is free (its
 * process died: the database ends the session the moment the connection closes) or when its
 * row's lease has lapsed (its machine vanished without closing the connection).
 *
 * An epoch is one life of the instance: one id, one lock, one signal. When the instance can no
 * longer vouch for its claims (the connection dropped, so the lock is gone; or the lease could
 * not be renewed in time) the epoch's signal aborts, every claim of it counts as lost, and a
 * new epoch starts once the database is back. No claim is granted without a live epoch.
 */
export interface InstanceLiveness {
  /** The live epoch, or undefined while there is none (claims fail closed). */
  current(): Epoch | undefined
  /** Whether the notification connection is up (waiters are woken across instances). */
  readonly listening: boolean
  stop(): Promise<void>
}

export interface Epoch {
  readonly instanceId: string
  readonly signal: AbortSignal
  /**
   * Whether the instance still vouches for the epoch's claims now: false once its renewals have
   * failed for most of a lease, even if the heartbeat that ends the epoch has not run yet (the
   * event loop stood still).
   */
  readonly vouches: () => boolean
}

export interface InstanceOptions {
  readonly poolConfig: PoolConfig
  readonly table: string
  readonly channel: string
  readonly leaseMs: number
  readonly onNotify: (payload: string) => void
  readonly onError?: (error: unknown) => void
}

/** The advisory lock's first key: the instances of one records table share it. */
export const lockNamespaceSql = (table: string): string =>
  `(hashtext('ticksupply idempotency ' || '${table}') & 2147483647)`

/**
 * The database's own clock in epoch milliseconds. Liveness always runs on it, even when a
 * test clock drives the records' expiry: it is about real processes and real connections.
 */
export const DATABASE_NOW_SQL = `(extract(epoch from clock_timestamp()) * 1000)::bigint`

export async function startInstanceLiveness(options: InstanceOptions): Promise<InstanceLiveness> {
  const { table, channel, leaseMs } = options
  const instances = `${table}_instances`
  let client: pg.Client | undefined
  interface LiveEpoch extends Epoch {
    readonly controller: AbortController
    vouchedUntil: number
  }
  let epoch: LiveEpoch | undefined
  let stopped = false
  let reconnectTimer: NodeJS.Timeout | undefined
  let attempt = 0

  const endEpoch = (reason: string) => {
    const ended = epoch
    epoch = undefined
    if (ended === undefined) return
    ended.controller.abort(new Error(`the idempotency store instance lost its liveness: ${reason}`))
  }

  const connect = async (): Promise<void> => {
    const next = new pg.Client({ ...options.poolConfig, keepAlive: true })
    next.on('notification', (message) => {
      if (message.channel === channel && message.payload !== undefined) {
        options.onNotify(message.payload)
      }
    })
    const onGone = (error?: unknown) => {
      if (client !== next) return
      if (error !== undefined) options.onError?.(error)
      endEpoch('its connection to the database ended')
      scheduleReconnect()
    }
    next.on('error', onGone)
    next.on('end', () => {
      onGone()
    })
    client = next
    await next.connect()
    // The database notices a peer that vanished within about half a minute, not hours.
    await next.query(
      'SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3',
    )
    await next.query(`LISTEN ${channel}`)
    const id = randomUUID()
    let lockKey = 0
    for (let tries = 0; lockKey === 0; tries++) {
      const candidate = randomInt(1, 2 ** 31 - 1)
      const locked = await next.query<{ locked: boolean }>(
        `SELECT pg_try_advisory_lock(${lockNamespaceSql(table)}, $1) AS locked`,
        [candidate],
      )
      if (locked.rows[0]?.locked === true) lockKey = candidate
      else if (tries > 10) throw new Error('could not take an instance lock')
    }
    const sentAt = Date.now()
    await next.query(
      `INSERT INTO ${instances} (id, lock_key, backend_pid, lease_expires_at, started_at)
       SELECT $1, $2, pg_backend_pid(), now.ms + $3::bigint, now.ms
         FROM (SELECT ${DATABASE_NOW_SQL} AS ms) AS now`,
      [id, lockKey, leaseMs],
    )
    const controller = new AbortController()
    const live: LiveEpoch = {
      instanceId: id,
      controller,
      signal: controller.signal,
      vouchedUntil: sentAt + vouchWindow(leaseMs),
      vouches: () => !controller.signal.aborted && Date.now() <= live.vouchedUntil,
    }
    epoch = live
    attempt = 0
  }

  const scheduleReconnect = () => {
    if (stopped || reconnectTimer !== undefined) return
    const old = client
    client = undefined
    old?.removeAllListeners()
    old?.on('error', () => undefined)
    void old?.end().catch(() => undefined)
    const delayMs = Math.min(5_000, 100 * 2 ** attempt++)
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined
      connect().catch((error: unknown) => {
        options.onError?.(error)
        scheduleReconnect()
      })
    }, delayMs)
    reconnectTimer.unref()
  }

  // One renewal for all the instance's claims, every third of the lease, on the same
  // connection as the lock: a renewal that succeeds also shows the lock is still held.
  const heartbeat = setInterval(
    () => {
      const live = epoch
      const current = client
      if (live === undefined || current === undefined) return
      if (Date.now() > live.vouchedUntil) {
        // Renewals have failed for most of a lease: other instances will soon count our
        // claims as dead. Stop vouching before they do.
        endEpoch('its lease could not be renewed')
        scheduleReconnect()
        return
      }
      const sentAt = Date.now()
      current
        .query(
          `UPDATE ${instances} SET lease_expires_at = ${DATABASE_NOW_SQL} + $2::bigint WHERE id = $1`,
          [live.instanceId, leaseMs],
        )
        .then(
          (result) => {
            if (epoch !== live) return
            if (result.rowCount === 1) live.vouchedUntil = sentAt + vouchWindow(leaseMs)
            else {
              // Our row is gone (cleaned up as dead): the claims are no longer ours.
              endEpoch('its instance row was removed')
              scheduleReconnect()
            }
          },
          (error: unknown) => options.onError?.(error),
        )
    },
    Math.max(10, Math.floor(leaseMs / 3)),
  )
  heartbeat.unref()

  await connect()

  return {
    current: () => {
      const live = epoch
      if (live === undefined || Date.now() > live.vouchedUntil) return undefined
      return live
    },
    get listening() {
      return epoch !== undefined
    },
    async stop() {
      stopped = true
      clearInterval(heartbeat)
      clearTimeout(reconnectTimer)
      const live = epoch
      const current = client
      client = undefined
      endEpoch('the store was closed')
      current?.removeAllListeners()
      current?.on('error', () => undefined)
      if (live !== undefined && current !== undefined) {
        // A clean stop frees our claims at once; ending the session frees the lock too.
        await current
          .query(`DELETE FROM ${instances} WHERE id = $1`, [live.instanceId])
          .catch(() => undefined)
      }
      await current?.end().catch(() => undefined)
    },
  }
}

/**
 * How long after sending a renewal the instance still vouches for its claims: the lease less
 * a sixth of it, so that it stops before any other instance can see the lease as lapsed (the
 * database started the lease after the renewal was sent).
 */
function vouchWindow(leaseMs: number): number {
  return leaseMs - Math.floor(leaseMs / 6)
}
