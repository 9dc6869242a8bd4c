import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'

/**
 * Checkpoints a WAL database from a worker thread, so that no commit on the event loop waits
 * for one.
 *
 * SQLite's automatic checkpoint runs inside the commit that crosses its threshold (1,000 pages
 * by default): that commit copies the WAL into the database and, at `synchronous=NORMAL`,
 * fsyncs it. Measured under the handler benchmark's first requests, one group commit in thirty
 * took 19 to 24 ms that way, and those commits were two thirds of all commit time: every
 * request in flight waited for them. The worker's own connection runs a passive checkpoint
 * (which never blocks the writer) a few times a second; the writer's automatic checkpoint
 * stays on at a far higher threshold, as a backstop should the worker fall behind or die.
 */
export interface SqliteCheckpointer {
  /** Stops the worker; its connection closes. */
  stop(): void
}

/** The writer's own automatic checkpoint, in pages: a backstop only (about 40 MB of WAL). */
export const BACKSTOP_AUTOCHECKPOINT_PAGES = 10_000

/** SQLite's own threshold, given back to the writer if the worker fails. */
export const SQLITE_AUTOCHECKPOINT_PAGES = 1_000

export const DEFAULT_CHECKPOINT_INTERVAL_MS = 200

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
const db = new Database(workerData.filename, { fileMustExist: true })
// Never wait for a lock: a checkpoint that cannot run now runs at the next tick.
db.pragma('busy_timeout = 0')
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)')
  } catch {
    // Busy, or the file is going away: the next tick tries again, the backstop remains.
  }
}, workerData.intervalMs)
parentPort.on('message', (message) => {
  if (message !== 'stop') return
  clearInterval(timer)
  db.close()
  parentPort.close()
})
`

/**
 * @param onFailure called once if the worker fails (it could not open the file, the driver
 *   would not load): the caller gives the writer its own checkpoint back, since a backstop of
 *   10,000 pages alone would make every checkpoint ten times longer than SQLite's.
 */
export function startSqliteCheckpointer(
  filename: string,
  onFailure: (error: Error) => void,
  intervalMs: number = DEFAULT_CHECKPOINT_INTERVAL_MS,
): SqliteCheckpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3')
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { driver, filename, intervalMs },
  })
  // A checkpointer must never keep a process alive, nor take it down.
  worker.unref()
  worker.once('error', onFailure)
  return {
    stop() {
      worker.postMessage('stop')
    },
  }
}
