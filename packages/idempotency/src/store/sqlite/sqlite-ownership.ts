import { randomUUID } from 'node:crypto'
import { closeSync, openSync, readFileSync, realpathSync, statSync } from 'node:fs'
import { hostname } from 'node:os'
import Database from 'better-sqlite3'
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
  /** The lock file the owner held for its life; null for an owner of an earlier version. */
  lock_path: string | null
}

/** Files whose records a store of this process owns (two stores would split the claims). */
const ownedHere = new Set<string>()

/**
 * Makes this process the one owner of the records in `table`: refuses while another live
 * process owns them, and takes over from one that died.
 *
 * Whether the previous owner lives is known at once on the same kernel: the owner holds an
 * exclusive lock on a file beside the database (`<file>-owner`) for its life, which the kernel
 * frees the moment the process dies, whatever its pid namespace or host name (a container
 * recreated on the same volume has a new host name and pids of its own). Taking that lock
 * proves the previous owner on this kernel gone. An owner of an earlier version, which held no
 * lock, is checked by its pid, which must exist and have started when it did (so a reused pid
 * does not count). An owner on another machine (a shared volume, whose locks may be local to
 * each machine) counts as alive while its heartbeat is fresh.
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
  // The lock and the write-ahead log both go by the file's name: a second name (a hard link)
  // would let a second owner in beside the first, each with a log of its own. A symlink is
  // resolved above, a hard link cannot be: a file with two is refused.
  const links = file === undefined ? 1 : statSync(file).nlink
  if (links > 1) {
    throw new SqliteStoreOwnedError(
      `${db.name} has ${String(links)} hard links: one process per SQLite database is enforced by the file's name, and SQLite keeps a write-ahead log per name. Give the database one name (a symbolic link is fine).`,
    )
  }
  const slot = file === undefined ? undefined : `${file}\0${table}`
  if (slot !== undefined && ownedHere.has(slot)) {
    throw new SqliteStoreOwnedError(
      `A store of this process already owns the idempotency records in ${db.name} (${table}): create one store per file and share it.`,
    )
  }
  const owners = `${table}_owner`
  const refused = (current: OwnerRow | undefined) =>
    new SqliteStoreOwnedError(
      `${current === undefined ? 'Another process' : `Process ${String(current.pid)} on ${current.host}`} owns the idempotency records in ${db.name}: one process per SQLite database (claims live in its memory). Stop it, or use PostgreSQL to run several instances.`,
    )
  // First, before anything touches the file: a live owner on this kernel holds the lock.
  const lock = file === undefined ? undefined : holdLifetimeLock(`${file}-owner`)
  if (lock === 'held') throw refused(readOwnerQuietly(db, owners))
  // At start, before the process serves: wait for a lock of the database synchronously, briefly.
  db.pragma('busy_timeout = 5000')
  try {
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
    const ownerColumns = db
      .prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${owners}')`)
      .all()
    if (!ownerColumns.some((column) => column.name === 'lock_path')) {
      db.exec(`ALTER TABLE ${owners} ADD COLUMN lock_path TEXT`)
    }
    const me: OwnerRow = {
      instance: randomUUID(),
      pid: process.pid,
      host: hostname(),
      boot_id: bootId(),
      process_start: processStart(process.pid),
      heartbeat_at: Date.now(),
      lock_path: lock?.identity ?? null,
    }
    db.transaction(() => {
      const current = db.prepare<[], OwnerRow>(`SELECT * FROM ${owners} WHERE id = 1`).get()
      if (current !== undefined && isAlive(current, staleMs, lock)) throw refused(current)
      db.prepare(
        `INSERT INTO ${owners} (id, instance, pid, host, boot_id, process_start, heartbeat_at,
                                lock_path)
         VALUES (1, @instance, @pid, @host, @boot_id, @process_start, @heartbeat_at, @lock_path)
         ON CONFLICT (id) DO UPDATE SET instance = excluded.instance, pid = excluded.pid,
           host = excluded.host, boot_id = excluded.boot_id,
           process_start = excluded.process_start, heartbeat_at = excluded.heartbeat_at,
           lock_path = excluded.lock_path`,
      ).run(me)
    }).immediate()
    if (slot !== undefined) ownedHere.add(slot)
    return watchOwnership(connection, owners, me.instance, heartbeatMs, () => {
      if (slot !== undefined) ownedHere.delete(slot)
      lock?.release()
    })
  } catch (error) {
    lock?.release()
    throw error
  } finally {
    db.pragma('busy_timeout = 0')
  }
}

/** The owner row as it is, for a refusal's message; undefined if it cannot be read now. */
function readOwnerQuietly(db: Database.Database, owners: string): OwnerRow | undefined {
  try {
    return db.prepare<[], OwnerRow>(`SELECT * FROM ${owners} WHERE id = 1`).get()
  } catch {
    return undefined
  }
}

/** The heartbeat of an owner, and its release. */
function watchOwnership(
  connection: SqliteConnection,
  owners: string,
  instance: string,
  heartbeatMs: number,
  letGo: () => void,
): StoreOwnership {
  const db = connection.database
  const controller = new AbortController()
  const beat = db.prepare<[number, string]>(
    `UPDATE ${owners} SET heartbeat_at = ? WHERE id = 1 AND instance = ?`,
  )
  const timer = setInterval(() => {
    connection
      .write(() => beat.run(Date.now(), instance).changes)
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
      letGo()
      if (!db.open) return
      // A clean stop frees the file at once; after a crash the next owner sees a dead pid.
      const remove = (database: Database.Database) =>
        database.prepare(`DELETE FROM ${owners} WHERE id = 1 AND instance = ?`).run(instance)
      if (!db.inTransaction) {
        try {
          remove(db)
          return
        } catch {
          // Locked by another process for now: queued, as below.
        }
      }
      void connection.exclusive(remove).catch(() => undefined)
    },
  }
}

function isAlive(owner: OwnerRow, staleMs: number, lock: SharedLock | undefined): boolean {
  const sameKernel = owner.boot_id !== null && owner.boot_id === bootId()
  const sameHost = sameKernel && owner.host === hostname()
  // The owner held this very lock file (the same inode, born at the same instant) for its
  // life, and now this process holds it: on this kernel, the owner is gone. Under another host
  // name (another container) that is all there is to know; under this one its pid must say so
  // too, which it does unless the file was replaced under a live owner.
  const heldItsLock = sameKernel && lock !== undefined && owner.lock_path === lock.identity
  if (heldItsLock && !sameHost) return false
  if (!sameHost) return owner.heartbeat_at > Date.now() - staleMs
  return processAlive(owner)
}

function processAlive(owner: OwnerRow): boolean {
  // A row of this very process: one of its stores, closed (every store still open is in
  // `ownedHere`, refused before this), whose row could not be deleted yet.
  if (owner.pid === process.pid && owner.process_start === processStart(process.pid)) return false
  if (owner.process_start !== null) return processStart(owner.pid) === owner.process_start
  try {
    process.kill(owner.pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * An exclusive lock on a file, held until the last store of this process that uses it lets
 * go, or the process dies: SQLite's exclusive locking mode on a database of its own, which
 * keeps its POSIX lock from the first write to the close. One per file and process, shared by
 * the stores of several tables of the file: POSIX drops every lock a process holds on a file
 * when it closes any descriptor of it, so the file is opened once. It is never deleted: a
 * process that opened it just before would hold a lock on a file no one else can see.
 */
interface SharedLock {
  /** The file as it is now: its path, device, inode and birth, which a replaced file changes. */
  readonly identity: string
  release(): void
}

const locksHere = new Map<string, { identity: string; database: Database.Database; refs: number }>()

/**
 * How long a lock held by another process is tried again. A killed process shows as a zombie
 * once its main thread has exited, and its files (the lock with them) are closed only once its
 * last thread has: a few milliseconds later, which a restart at once can meet.
 */
const LOCK_PATIENCE_MS = 1_000
const LOCK_RETRY_MS = 20

/**
 * Holds the lock on `path`: the lock, or `'held'` while another process holds it. Throws
 * {@link SqliteStoreOwnedError} when it cannot be taken at all (a directory in its place).
 */
function holdLifetimeLock(path: string): SharedLock | 'held' {
  let entry = locksHere.get(path)
  if (entry === undefined) {
    const deadline = Date.now() + LOCK_PATIENCE_MS
    for (;;) {
      const taken = tryLifetimeLock(path)
      if (taken !== 'held') {
        entry = { ...taken, refs: 0 }
        locksHere.set(path, entry)
        break
      }
      if (Date.now() >= deadline) return 'held'
      // At start, before the process serves anything: a synchronous wait blocks no one.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, LOCK_RETRY_MS)
    }
  }
  const held = entry
  held.refs++
  let released = false
  return {
    identity: held.identity,
    release() {
      if (released) return
      released = true
      if (--held.refs > 0) return
      locksHere.delete(path)
      if (held.database.open) held.database.close()
    },
  }
}

function tryLifetimeLock(path: string): { identity: string; database: Database.Database } | 'held' {
  let database: Database.Database | undefined
  try {
    // Created readable by the owner only, as the database beside it; an existing one is kept.
    try {
      closeSync(openSync(path, 'wx', 0o600))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    database = new Database(path, { timeout: 0 })
    database.pragma('locking_mode = EXCLUSIVE')
    database.pragma('journal_mode = OFF')
    database.exec(
      'CREATE TABLE IF NOT EXISTS lock (id INTEGER PRIMARY KEY); INSERT OR REPLACE INTO lock VALUES (1)',
    )
    const stat = statSync(path, { bigint: true })
    const identity = `${path}@${String(stat.dev)}:${String(stat.ino)}:${String(stat.birthtimeNs)}`
    return { identity, database }
  } catch (error) {
    database?.close()
    if ((error as { code?: unknown }).code === 'SQLITE_BUSY') return 'held'
    // The lock is how a second process is kept out: without it the file is not owned at all.
    throw new SqliteStoreOwnedError(
      `Cannot take the owner's lock ${path} (${error instanceof Error ? error.message : String(error)}): it must be a file this process can create and write, beside the database.`,
      { cause: error },
    )
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
