import { randomUUID } from 'node:crypto'
import { readFileSync, realpathSync } from 'node:fs'
import { hostname } from 'node:os'
import type { SqliteConnection } from './sqlite-connection.js'

/**
 * Another process (or another store in this one) owns the idempotency records of the file:
 * claims live in the owner's memory, so a second owner could run an operation twice.
 */
export class SqliteStoreOwnedError extends Error {
  readonly code = 'store_owned'
  override readonly name = 'SqliteStoreOwnedError'
}

export interface StoreOwnership {
  /** Aborts if the ownership is lost (another process took the file over). */
  readonly signal: AbortSignal
  release(): void
}

interface OwnerRow {
  instance: string
  pid: number
  host: string
  boot_id: string | null
  process_start: string | null
  heartbeat_at: number
}

/** Files whose records a store of this process owns (two stores would split the claims). */
const ownedHere = new Set<string>()

/**
 * Makes this process the one owner of the records in `table`: refuses while another live
 * process owns them, and takes over from one that died.
 *
 * Whether the previous owner lives is known at once on the same machine: the process with its
 * pid must exist and have started when it did (so a reused pid does not count). An owner on
 * another machine (a shared volume) counts as alive while its heartbeat is fresh.
 */
export function acquireOwnership(
  connection: SqliteConnection,
  table: string,
  options: { readonly heartbeatMs?: number; readonly staleMs?: number } = {},
): StoreOwnership {
  const heartbeatMs = options.heartbeatMs ?? 5_000
  const staleMs = options.staleMs ?? 6 * heartbeatMs
  const db = connection.database
  const file = db.memory || db.name === '' ? undefined : realpathSync(db.name)
  const slot = file === undefined ? undefined : `${file}\0${table}`
  if (slot !== undefined && ownedHere.has(slot)) {
    throw new SqliteStoreOwnedError(
      `A store of this process already owns the idempotency records in ${db.name} (${table}): create one store per file and share it.`,
    )
  }
  const owners = `${table}_owner`
  db.exec(`
    CREATE TABLE IF NOT EXISTS ${owners} (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      instance TEXT NOT NULL,
      pid INTEGER NOT NULL,
      host TEXT NOT NULL,
      boot_id TEXT,
      process_start TEXT,
      heartbeat_at INTEGER NOT NULL
    )`)
  const me: OwnerRow = {
    instance: randomUUID(),
    pid: process.pid,
    host: hostname(),
    boot_id: bootId(),
    process_start: processStart(process.pid),
    heartbeat_at: Date.now(),
  }
  // At start, before the process serves: wait for a lock synchronously, briefly.
  db.pragma('busy_timeout = 5000')
  try {
    db.transaction(() => {
      const current = db.prepare<[], OwnerRow>(`SELECT * FROM ${owners} WHERE id = 1`).get()
      if (current !== undefined && isAlive(current, staleMs)) {
        throw new SqliteStoreOwnedError(
          `Process ${String(current.pid)} on ${current.host} owns the idempotency records in ${db.name}: one process per SQLite database (claims live in its memory). Stop it, or use PostgreSQL to run several instances.`,
        )
      }
      db.prepare(
        `INSERT INTO ${owners} (id, instance, pid, host, boot_id, process_start, heartbeat_at)
         VALUES (1, @instance, @pid, @host, @boot_id, @process_start, @heartbeat_at)
         ON CONFLICT (id) DO UPDATE SET instance = excluded.instance, pid = excluded.pid,
           host = excluded.host, boot_id = excluded.boot_id,
           process_start = excluded.process_start, heartbeat_at = excluded.heartbeat_at`,
      ).run(me)
    }).immediate()
  } finally {
    db.pragma('busy_timeout = 0')
  }
  if (slot !== undefined) ownedHere.add(slot)

  const controller = new AbortController()
  const beat = db.prepare<[number, string]>(
    `UPDATE ${owners} SET heartbeat_at = ? WHERE id = 1 AND instance = ?`,
  )
  const timer = setInterval(() => {
    connection
      .write(() => beat.run(Date.now(), me.instance).changes)
      .then(
        (changes) => {
          if (changes === 0) controller.abort(new SqliteStoreOwnedError('ownership lost'))
        },
        // A missed beat is harmless on this machine, where liveness is the process itself.
        () => undefined,
      )
  }, heartbeatMs)
  timer.unref()

  return {
    signal: controller.signal,
    release() {
      clearInterval(timer)
      if (slot !== undefined) ownedHere.delete(slot)
      if (!db.open) return
      // A clean stop frees the file at once; after a crash the next owner sees a dead pid.
      void connection
        .exclusive((database) =>
          database.prepare(`DELETE FROM ${owners} WHERE id = 1 AND instance = ?`).run(me.instance),
        )
        .catch(() => undefined)
    },
  }
}

function isAlive(owner: OwnerRow, staleMs: number): boolean {
  const sameMachine =
    owner.host === hostname() && owner.boot_id !== null && owner.boot_id === bootId()
  if (!sameMachine) return owner.heartbeat_at > Date.now() - staleMs
  if (owner.process_start !== null) return processStart(owner.pid) === owner.process_start
  try {
    process.kill(owner.pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The kernel's boot id (Linux); null where there is none. */
function bootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  } catch {
    return null
  }
}

/**
 * When the process started, in clock ticks since boot (Linux `/proc/<pid>/stat`, field 22);
 * null for a process that is gone. A zombie (state `Z`, or `X` while it is reaped) is gone: it
 * has exited and closed its files, and only its parent has yet to read its exit status, which a
 * supervisor that kills and restarts at once may not have done yet.
 */
function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const state = fields[0]
    if (state === 'Z' || state === 'X' || state === 'x') return null
    return fields[19] ?? null
  } catch {
    return null
  }
}
