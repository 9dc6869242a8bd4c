import { randomBytes } from 'node:crypto'
import { setImmediate as yieldToEventLoop, setTimeout as sleep } from 'node:timers/promises'
import type { Database } from '../../db/database.js'
import { databaseNowMs } from '../../db/database.js'
import { isDatabaseUnavailable } from '../../db/database-errors.js'
import type { StreamType } from '../catalog-seed.js'
import type { SchemaSnapshot } from './export-schemas.js'
import { exportPrefix } from './export-jobs.js'
import { newId } from '../ids.js'
import type { Cell } from './apply-schema.js'
import { compileSchema } from './apply-schema.js'
import type { ArtifactStore } from './artifact-store.js'
import type { ExportFormat, FormatOptions } from './export-writers.js'
import { fileExtension, writeCsvGz, writeParquet } from './export-writers.js'
import type { RecordedStream, RecorderSource } from './recorder-source.js'

export interface ExportWorkerOptions {
  readonly db: Database
  readonly store: ArtifactStore
  readonly source: RecorderSource
  /** How often an idle worker looks for queued jobs (a new export also wakes it). */
  readonly pollMs: number
  /** How long a claim lasts without renewal; renewed every third of it while the job runs. */
  readonly leaseMs: number
  /** Fault injection: a job waits this long between writing its files and committing them. */
  readonly testDelayMs: number
  readonly onError: (error: unknown, message: string) => void
}

export interface ExportWorker {
  start(): void
  /** Stops claiming; a job in progress goes back to the queue. Resolves when idle. */
  stop(): Promise<void>
  /** Looks for work now instead of at the next poll. */
  wake(): void
}

const HOUR_NS = 3_600_000_000_000n

interface ClaimedJob {
  id: string
  token: string
  format: ExportFormat
  formatOptions: FormatOptions
  snapshot: SchemaSnapshot
  ranges: [bigint, bigint][]
  stream: RecordedStream
}

interface JobRow {
  id: string
  format: ExportFormat
  format_options: string
  schema_snapshot: string
  ranges: string
  datastream_id: number | string
  exchange: string
  instrument: string
  stream_type: StreamType
  base: string
}

class ClaimLost extends Error {
  override readonly name = 'ClaimLost'
}
class Stopping extends Error {
  override readonly name = 'Stopping'
}

/** `YYYYMMDDHH` of the hour that starts at `hourStartNs`. */
function hourLabel(hourStartNs: bigint): string {
  return new Date(Number(hourStartNs / 1_000_000n)).toISOString().slice(0, 13).replace(/[-T]/g, '')
}

/**
 * Runs export jobs inside the server process. The queue is the `exports` table: a job is
 * claimed with one conditional UPDATE that sets a fresh token and a lease, so that of two
 * workers (in this process or any other on the same database) only one can hold it. The holder
 * renews the lease while it works; a worker that died leaves a lease that lapses, and the job is
 * claimed again and redone from the start. Files are written under a folder of the claim's own
 * token and become the export's artifacts in the one transaction that also marks it succeeded,
 * conditional on still holding the claim: a job finishes exactly once.
 */
export function createExportWorker(options: ExportWorkerOptions): ExportWorker {
  const { db, store, source } = options
  let running: Promise<void> | undefined
  let stopped = false
  let wakeUp: (() => void) | undefined
  let current: AbortController | undefined
  // Read through a function: stop() flips it while the loop awaits.
  const isStopped = () => stopped

  // Leases are set and compared on the database's clock, so that every instance agrees when
  // one has lapsed; `started_at` and `finished_at` are for people, on this instance's clock.
  const now = databaseNowMs(db.dialect)

  async function claimNext(startedAt: number): Promise<ClaimedJob | undefined> {
    const token = randomBytes(12).toString('hex')
    // One statement, so the claim is atomic on SQLite and PostgreSQL alike: the subquery picks
    // the oldest claimable job, and the repeated condition makes the UPDATE a no-op if another
    // worker claimed that job in between (PostgreSQL re-checks it on the locked row).
    const claimed = await db.run(
      `UPDATE exports
          SET status = 'running', worker_token = ?, worker_lease_expires_at = ${now} + ?,
              attempts = attempts + 1, started_at = COALESCE(started_at, ?)
        WHERE id = (SELECT id FROM exports
                     WHERE status = 'queued'
                        OR (status = 'running' AND worker_lease_expires_at < ${now})
                     ORDER BY created_at, id LIMIT 1)
          AND (status = 'queued' OR (status = 'running' AND worker_lease_expires_at < ${now}))`,
      [token, options.leaseMs, startedAt],
    )
    if (claimed === 0) return undefined
    const row = await db.get<JobRow>(
      `SELECT e.id, e.format, e.format_options, e.schema_snapshot, e.ranges, e.datastream_id,
              d.exchange, d.instrument, d.stream_type, i.base
         FROM exports e
         JOIN datastreams d ON d.id = e.datastream_id
         JOIN instruments i ON i.exchange = d.exchange AND i.symbol = d.instrument
        WHERE e.worker_token = ?`,
      [token],
    )
    if (row === undefined) return undefined
    return {
      id: row.id,
      token,
      format: row.format,
      formatOptions: JSON.parse(row.format_options) as FormatOptions,
      snapshot: JSON.parse(row.schema_snapshot) as SchemaSnapshot,
      ranges: (JSON.parse(row.ranges) as [string, string][]).map(([from, to]) => [
        BigInt(from),
        BigInt(to),
      ]),
      stream: {
        datastreamId: Number(row.datastream_id),
        exchange: row.exchange,
        instrument: row.instrument,
        base: row.base,
        streamType: row.stream_type,
      },
    }
  }

  /** Writes one file per hour of data that has rows; resolves what was written, in order. */
  async function produce(
    job: ClaimedJob,
    signal: AbortSignal,
  ): Promise<{ filename: string; key: string; bytes: number }[]> {
    const compiled = compileSchema(job.snapshot, job.stream.exchange)
    const hours = new Map<bigint, [bigint, bigint][]>()
    for (const [from, to] of job.ranges) {
      for (let hour = (from / HOUR_NS) * HOUR_NS; hour < to; hour += HOUR_NS) {
        const start = from > hour ? from : hour
        const end = to < hour + HOUR_NS ? to : hour + HOUR_NS
        if (end > start) hours.set(hour, [...(hours.get(hour) ?? []), [start, end]])
      }
    }
    const written: { filename: string; key: string; bytes: number }[] = []
    const { exchange, instrument, streamType } = job.stream
    for (const [hour, segments] of [...hours].sort(([a], [b]) => (a < b ? -1 : 1))) {
      signal.throwIfAborted()
      const rows: Cell[][] = []
      for (const [from, to] of segments)
        for (const message of source.messages(job.stream, from, to))
          rows.push(...compiled.rows(message))
      if (rows.length === 0) continue
      const filename = `${exchange}_${instrument}_${streamType}_part_${hourLabel(hour)}.${fileExtension(job.format)}`
      const bytes =
        job.format === 'csv'
          ? writeCsvGz(compiled.columns, rows)
          : writeParquet(compiled.columns, rows, job.formatOptions as never)
      const key = `${exportPrefix(job.id)}${job.token}/${filename}`
      await store.put(key, bytes)
      written.push({ filename, key, bytes: bytes.byteLength })
      await yieldToEventLoop()
    }
    return written
  }

  async function run(job: ClaimedJob): Promise<void> {
    const controller = new AbortController()
    current = controller
    // Claimed while stop() was already waiting: give it back at once instead of running it to
    // the end (stop() aborted whichever job was current then, and this one was not yet).
    if (isStopped()) controller.abort(new Stopping('server stopping'))
    const ownFolder = `${exportPrefix(job.id)}${job.token}/`
    const renew = setInterval(
      () => {
        db.run(
          `UPDATE exports SET worker_lease_expires_at = ${now} + ?
            WHERE id = ? AND worker_token = ? AND status = 'running'`,
          [options.leaseMs, job.id, job.token],
        ).then(
          (renewed) => {
            // Canceled, deleted or taken over: stop working on it.
            if (renewed === 0) controller.abort(new ClaimLost('claim lost'))
          },
          (error: unknown) => {
            options.onError(error, 'export lease renewal failed')
          },
        )
      },
      Math.max(10, Math.floor(options.leaseMs / 3)),
    )
    try {
      const files = await produce(job, controller.signal)
      // Fault injection in the widest window: the files are written, the claim not yet settled.
      if (options.testDelayMs > 0)
        await sleep(options.testDelayMs, undefined, { signal: controller.signal })
      controller.signal.throwIfAborted()
      const finished = await db.transaction(async (tx) => {
        const now = Date.now()
        const marked = await tx.run(
          `UPDATE exports SET status = 'succeeded', finished_at = ?, worker_token = NULL,
                  worker_lease_expires_at = NULL
            WHERE id = ? AND worker_token = ? AND status = 'running'`,
          [now, job.id, job.token],
        )
        if (marked === 0) return false
        for (const [position, file] of files.entries()) {
          await tx.run(
            `INSERT INTO export_artifacts (id, export_id, position, filename, storage_key, bytes, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)`,
            [newId('art', now), job.id, position, file.filename, file.key, file.bytes, now],
          )
        }
        return true
      })
      if (!finished) {
        await store.deletePrefix(ownFolder)
        return
      }
      // Folders of earlier attempts (a worker that died mid-way) are garbage now.
      for (const folder of await store.list(exportPrefix(job.id)))
        if (folder !== job.token) await store.deletePrefix(`${exportPrefix(job.id)}${folder}/`)
    } catch (error) {
      await store.deletePrefix(ownFolder).catch((cleanup: unknown) => {
        options.onError(cleanup, 'could not remove the files of an unfinished export')
      })
      const reason: unknown = controller.signal.reason
      if (controller.signal.aborted && reason instanceof Stopping) {
        // Shutting down: give the job back so that the next worker need not wait for the lease.
        await db.run(
          `UPDATE exports SET status = 'queued', worker_token = NULL, worker_lease_expires_at = NULL
            WHERE id = ? AND worker_token = ? AND status = 'running'`,
          [job.id, job.token],
        )
        return
      }
      if (controller.signal.aborted) return
      if (isDatabaseUnavailable(error)) {
        // An outage of the database is no failure of the job: it goes back to the queue, and
        // if the database cannot take even that, its lease lapses and it is claimed again.
        options.onError(error, `export ${job.id} was interrupted by a database outage`)
        await db
          .run(
            `UPDATE exports SET status = 'queued', worker_token = NULL, worker_lease_expires_at = NULL
              WHERE id = ? AND worker_token = ? AND status = 'running'`,
            [job.id, job.token],
          )
          .catch(() => undefined)
        return
      }
      const failed = await db.run(
        `UPDATE exports SET status = 'failed', reason = ?, finished_at = ?, worker_token = NULL,
                worker_lease_expires_at = NULL
          WHERE id = ? AND worker_token = ? AND status = 'running'`,
        ['Internal error while producing the export files', Date.now(), job.id, job.token],
      )
      if (failed === 1) {
        options.onError(error, `export ${job.id} failed`)
        return
      }
      // Canceled, deleted or taken over while its files were written (the removal of a deleted
      // export's folder races the writes, which then fail): not a failure, and what the race
      // left of a deleted export's folder goes too.
      const exists = await db.get<{ id: string }>('SELECT id FROM exports WHERE id = ?', [job.id])
      if (exists === undefined) {
        await store.deletePrefix(exportPrefix(job.id)).catch((cleanup: unknown) => {
          options.onError(cleanup, 'could not remove the files of a deleted export')
        })
      }
    } finally {
      clearInterval(renew)
      current = undefined
    }
  }

  /** Removes the folders of exports that no longer exist (deleted while this server was down). */
  async function sweep(): Promise<void> {
    for (const id of await store.list('exports/')) {
      const found = await db.get('SELECT 1 AS found FROM exports WHERE id = ?', [id])
      if (found === undefined) await store.deletePrefix(`exports/${id}/`)
    }
  }

  async function loop(): Promise<void> {
    await sweep().catch((error: unknown) => {
      options.onError(error, 'export folder sweep failed')
    })
    while (!stopped) {
      let job: ClaimedJob | undefined
      try {
        job = await claimNext(Date.now())
      } catch (error) {
        options.onError(error, 'claiming an export failed')
      }
      if (job !== undefined) {
        // A job's own bookkeeping can fail too (the database went away while it was marked
        // failed): the loop goes on, and the job's lease lapses.
        await run(job).catch((error: unknown) => {
          options.onError(error, `export ${job.id} could not be settled`)
        })
        continue
      }
      if (isStopped()) return
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.pollMs)
        wakeUp = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      wakeUp = undefined
    }
  }

  return {
    start() {
      if (running !== undefined) return
      stopped = false
      running = loop()
    },
    async stop() {
      stopped = true
      wakeUp?.()
      current?.abort(new Stopping('server stopping'))
      await running
      running = undefined
    },
    wake() {
      wakeUp?.()
    },
  }
}
