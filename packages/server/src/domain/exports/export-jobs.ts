import type { Queryable } from '../../db/database.js'
import type { ExportFormat, FormatOptions } from './export-writers.js'
import type { Account } from '../accounts.js'
import { mayUseBilledFeatures } from '../accounts.js'
import { ApiError } from '../api-error.js'
import { findDatastream } from '../catalog.js'
import { catalogIdOf } from '../datastream-id.js'
import type { CreateExportRequest } from './create-export-request.js'
import type { SchemaSnapshot } from './export-schemas.js'
import { snapshotSchema } from './export-schemas.js'
import { isId, newId } from '../ids.js'
import { msToNs } from '../ns-time.js'
import type { Page } from '../page.js'
import { newestFirstKey, page, parseNewestFirstCursor } from '../page.js'
import { toRfc3339 } from '../time.js'

export type ExportStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled'

/** An export job as the API shows it; times in nanoseconds are bigints, written exactly. */
export interface ExportJob {
  readonly id: string
  readonly datastream_id: number
  readonly start_time: bigint
  readonly end_time: bigint
  readonly format: ExportFormat
  readonly format_options: FormatOptions
  readonly status: ExportStatus
  readonly created_at: string
  readonly started_at: string | null
  readonly finished_at: string | null
  readonly reason?: string
}

interface ExportRow {
  id: string
  datastream_id: number | string
  start_ns: string
  end_ns: string
  format: ExportFormat
  format_options: string
  status: ExportStatus
  reason: string | null
  created_at: number | string
  started_at: number | string | null
  finished_at: number | string | null
}

// Nanosecond columns are read as text: SQLite hands out a number (rounded past 2^53) otherwise.
const SELECT_EXPORT = `
  SELECT id, datastream_id, CAST(start_time_ns AS TEXT) AS start_ns, CAST(end_time_ns AS TEXT) AS end_ns,
         format, format_options, status, reason, created_at, started_at, finished_at
    FROM exports`

function toJob(row: ExportRow): ExportJob {
  const at = (ms: number | string | null) => (ms === null ? null : toRfc3339(Number(ms)))
  return {
    id: row.id,
    datastream_id: Number(row.datastream_id),
    start_time: BigInt(row.start_ns),
    end_time: BigInt(row.end_ns),
    format: row.format,
    format_options: JSON.parse(row.format_options) as FormatOptions,
    status: row.status,
    created_at: toRfc3339(Number(row.created_at)),
    started_at: at(row.started_at),
    finished_at: at(row.finished_at),
    ...(row.status === 'failed' ? { reason: row.reason ?? 'Export failed' } : {}),
  }
}

function notFound(id: string): ApiError {
  return new ApiError('not_found', `Export ${id} not found`)
}

async function find(db: Queryable, account: Account, id: string): Promise<ExportRow> {
  const row = isId('exp', id)
    ? await db.get<ExportRow>(`${SELECT_EXPORT} WHERE id = ? AND account_id = ?`, [id, account.id])
    : undefined
  if (row === undefined) throw notFound(id)
  return row
}

export async function getExport(db: Queryable, account: Account, id: string): Promise<ExportJob> {
  return toJob(await find(db, account, id))
}

/**
 * Queues an export. The subscription's spans, clipped to the range (an open span ends now), and
 * the schema's published version are snapshotted here: later pauses, deletes and publishes do
 * not change what this export produces.
 */
export async function createExport(
  db: Queryable,
  account: Account,
  request: CreateExportRequest,
  now: number,
): Promise<ExportJob> {
  const catalogId = catalogIdOf(request.datastreamId)
  const datastream = catalogId === undefined ? undefined : await findDatastream(db, catalogId)
  if (datastream === undefined)
    throw new ApiError('not_found', `Datastream ${request.datastreamId.toString()} not found`)
  if (!mayUseBilledFeatures(account))
    throw new ApiError(
      'payment_required',
      'Your plan does not allow this action. Check your billing status.',
    )
  const subscription = await db.get<{ id: string; status: string }>(
    'SELECT id, status FROM subscriptions WHERE account_id = ? AND datastream_id = ?',
    [account.id, datastream.datastream_id],
  )
  if (subscription === undefined)
    throw new ApiError(
      'permission_denied',
      `No subscription to datastream ${String(datastream.datastream_id)}`,
    )
  if (subscription.status === 'deleted')
    throw new ApiError('permission_denied', 'Subscription has been deleted')
  const snapshot: SchemaSnapshot = await snapshotSchema(
    db,
    account,
    request.schema,
    datastream.stream_type,
  )
  const spans = await db.all<{ started_at: number | string; ended_at: number | string | null }>(
    'SELECT started_at, ended_at FROM spans WHERE subscription_id = ? ORDER BY started_at, id',
    [subscription.id],
  )
  const ranges: [string, string][] = []
  for (const span of spans) {
    const from = msToNs(Number(span.started_at))
    const to = msToNs(span.ended_at === null ? now : Number(span.ended_at))
    const start = from > request.startNs ? from : request.startNs
    const end = to < request.endNs ? to : request.endNs
    if (end > start) ranges.push([start.toString(), end.toString()])
  }
  const id = newId('exp', now)
  await db.run(
    `INSERT INTO exports (id, account_id, datastream_id, start_time_ns, end_time_ns, format,
       format_options, schema_snapshot, ranges, status, created_at, attempts)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, 0)`,
    [
      id,
      account.id,
      datastream.datastream_id,
      request.startNs,
      request.endNs,
      request.format,
      JSON.stringify(request.formatOptions),
      JSON.stringify(snapshot),
      JSON.stringify(ranges),
      now,
    ],
  )
  return {
    id,
    datastream_id: datastream.datastream_id,
    start_time: request.startNs,
    end_time: request.endNs,
    format: request.format,
    format_options: request.formatOptions,
    status: 'queued',
    created_at: toRfc3339(now),
    started_at: null,
    finished_at: null,
  }
}

/** Newest first, by (created_at, id). */
export async function listExports(
  db: Queryable,
  account: Account,
  query: { limit: number; after: string | undefined },
): Promise<Page<ExportJob>> {
  const total = await db.get<{ n: number | string }>(
    'SELECT COUNT(*) AS n FROM exports WHERE account_id = ?',
    [account.id],
  )
  const cursor = query.after === undefined ? undefined : parseNewestFirstCursor(query.after, 'exp')
  const rows = await db.all<ExportRow>(
    `${SELECT_EXPORT}
      WHERE account_id = ?
        ${cursor === undefined ? '' : 'AND (created_at < ? OR (created_at = ? AND id < ?))'}
      ORDER BY created_at DESC, id DESC LIMIT ?`,
    cursor === undefined
      ? [account.id, query.limit + 1]
      : [account.id, cursor.createdAt, cursor.createdAt, cursor.id, query.limit + 1],
  )
  const result = page(rows, query.limit, Number(total?.n ?? 0), newestFirstKey)
  return { ...result, items: result.items.map(toJob) }
}

/** Queued or running: canceled now (a running worker notices and stops). Canceled: no change. */
export async function cancelExport(
  db: Queryable,
  account: Account,
  id: string,
  now: number,
): Promise<void> {
  const row = await find(db, account, id)
  if (row.status === 'succeeded' || row.status === 'failed')
    throw new ApiError('invalid_argument', `Export ${id} has already finished`)
  if (row.status === 'canceled') return
  const changed = await db.run(
    `UPDATE exports SET status = 'canceled', finished_at = ?, worker_token = NULL,
            worker_lease_expires_at = NULL
      WHERE id = ? AND status IN ('queued', 'running')`,
    [now, id],
  )
  // A worker finished it between the read and the update: answer for the state it is in now.
  if (changed === 0) return cancelExport(db, account, id, now)
}

/**
 * Deletes the job and its artifact records; the caller removes the files once this commits.
 * A worker running it loses its claim and removes what it wrote.
 */
export async function deleteExport(db: Queryable, account: Account, id: string): Promise<void> {
  await find(db, account, id)
  // The job's row first, as a schema's delete does: a worker marks the job succeeded on it
  // before it inserts the artifacts, so once this transaction holds the row no artifact can
  // be added, and none committed in between breaks the foreign key (PostgreSQL, read
  // committed). A delete that loses the race to another finds no row: 404.
  const held = await db.run('UPDATE exports SET status = status WHERE id = ?', [id])
  if (held === 0) throw notFound(id)
  await db.run('DELETE FROM export_artifacts WHERE export_id = ?', [id])
  await db.run('DELETE FROM exports WHERE id = ?', [id])
}

/** Where an export's files live in the artifact store. */
export function exportPrefix(id: string): string {
  return `exports/${id}/`
}

export interface ArtifactRecord {
  readonly id: string
  readonly filename: string
  readonly bytes: number
  readonly storageKey: string
}

interface ArtifactRow {
  id: string
  filename: string
  bytes: number | string
  storage_key: string
}

const toArtifact = (row: ArtifactRow): ArtifactRecord => ({
  id: row.id,
  filename: row.filename,
  bytes: Number(row.bytes),
  storageKey: row.storage_key,
})

/** The files of a succeeded export, in order; before it succeeded, a 400. */
export async function listArtifacts(
  db: Queryable,
  account: Account,
  id: string,
): Promise<ArtifactRecord[]> {
  const row = await find(db, account, id)
  if (row.status !== 'succeeded')
    throw new ApiError(
      'invalid_argument',
      `Export ${id} has not succeeded (status: ${row.status}); download is available once it has`,
    )
  const rows = await db.all<ArtifactRow>(
    'SELECT id, filename, bytes, storage_key FROM export_artifacts WHERE export_id = ? ORDER BY position',
    [id],
  )
  return rows.map(toArtifact)
}

/** An artifact by id alone: a signed link is the credential, not an API key. */
export async function findArtifact(
  db: Queryable,
  artifactId: string,
): Promise<ArtifactRecord | undefined> {
  if (!isId('art', artifactId)) return undefined
  const row = await db.get<ArtifactRow>(
    'SELECT id, filename, bytes, storage_key FROM export_artifacts WHERE id = ?',
    [artifactId],
  )
  return row === undefined ? undefined : toArtifact(row)
}
