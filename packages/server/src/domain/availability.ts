import type { Queryable } from '../db/database.js'
import type { Account } from './accounts.js'
import { ApiError } from './api-error.js'
import type { Datastream } from './catalog.js'
import { findDatastream } from './catalog.js'
import { catalogIdOf } from './datastream-id.js'
import type { RecorderSource } from './exports/recorder-source.js'
import { msToNs } from './ns-time.js'
import { toRfc3339 } from './time.js'

/** One stretch of recorded data: `from` inclusive, `to` exclusive, nanoseconds as strings. */
export interface AvailabilityRange {
  readonly from: string
  readonly to: string
  readonly rows_estimate: number
}

export interface Availability {
  readonly datastream: Datastream
  readonly ranges: readonly AvailabilityRange[]
  /** When the ranges were computed: they are read live, and an open span ends then. */
  readonly updated_at: string
}

/**
 * What the account has recorded of a datastream: its subscription's spans, oldest first, with
 * touching ones merged, an open span ending now. Per account, because the recorder records for
 * subscriptions: data exists where the account subscribed. No subscription (or a deleted one,
 * whose spans are gone): no ranges.
 */
export async function getAvailability(
  db: Queryable,
  account: Account,
  datastreamId: bigint,
  source: RecorderSource,
  now: number,
): Promise<Availability> {
  const catalogId = catalogIdOf(datastreamId)
  const datastream = catalogId === undefined ? undefined : await findDatastream(db, catalogId)
  if (datastream === undefined)
    throw new ApiError('not_found', `Datastream ${datastreamId.toString()} not found`)
  const spans = await db.all<{ started_at: number | string; ended_at: number | string | null }>(
    `SELECT p.started_at, p.ended_at
       FROM spans p JOIN subscriptions s ON s.id = p.subscription_id
      WHERE s.account_id = ? AND s.datastream_id = ? AND s.status <> 'deleted'
      ORDER BY p.started_at, p.id`,
    [account.id, datastream.datastream_id],
  )
  const merged: [bigint, bigint][] = []
  for (const span of spans) {
    const from = msToNs(Number(span.started_at))
    const to = msToNs(span.ended_at === null ? now : Number(span.ended_at))
    if (to <= from) continue
    const last = merged.at(-1)
    if (last !== undefined && from <= last[1]) last[1] = to > last[1] ? to : last[1]
    else merged.push([from, to])
  }
  const instrument = await db.get<{ base: string }>(
    'SELECT base FROM instruments WHERE exchange = ? AND symbol = ?',
    [datastream.exchange, datastream.instrument],
  )
  const stream = {
    datastreamId: datastream.datastream_id,
    exchange: datastream.exchange,
    instrument: datastream.instrument,
    base: instrument?.base ?? '',
    streamType: datastream.stream_type,
  }
  return {
    datastream,
    ranges: merged.map(([from, to]) => ({
      from: from.toString(),
      to: to.toString(),
      rows_estimate: source.countMessages(stream, from, to),
    })),
    updated_at: toRfc3339(now),
  }
}
