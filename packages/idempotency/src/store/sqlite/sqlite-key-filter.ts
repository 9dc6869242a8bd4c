import type Database from 'better-sqlite3'
import { BloomFilter } from '../bloom-filter.js'
import { recordId } from '../settle-listeners.js'
import type { SqliteConnection } from './sqlite-connection.js'

export interface SqliteKeyFilterStats {
  /** Whether every record in the file has been read in: until then, every claim looks. */
  readonly ready: boolean
  /** Keys added (read in, or written since). */
  readonly keys: number
  readonly bytes: number
  /** Filters the keys are spread over: one, and one more each time the newest fills up. */
  readonly filters: number
  /** Claims of a new key that skipped the look-up. */
  readonly skipped: number
}

/**
 * Which keys the records table may hold, so that the claim of a key it cannot hold (a first
 * request, nearly every claim) skips the look-up: a B-tree descent that finds nothing, whose
 * cost grows with the table (7 µs at ten thousand records, 19 µs at ten million). Sound because
 * the file has one owner and every record is written through the store, which adds the key
 * before it inserts the record; the records already in the file are read in at start, in small
 * chunks between other work, and until that is done every claim looks.
 */
export interface SqliteKeyFilter {
  /**
   * False only when no record under (scope, key) can be in the file. Also checks, cheaply,
   * that the table is still there (a claim must fail before the operation runs, not after):
   * throws as the look-up would if it was dropped.
   */
  mayHold(scope: string, key: string, handle: Database.Database): boolean
  /** Before a record is written under (scope, key). */
  add(scope: string, key: string): void
  stats(): SqliteKeyFilterStats
  close(): void
}

/** Rows read in per turn of the event loop: about 2 ms of it. */
const CHUNK_ROWS = 1_000
const MIN_CAPACITY = 100_000

export function startSqliteKeyFilter(connection: SqliteConnection, table: string): SqliteKeyFilter {
  const db = connection.database
  const highest = db.prepare<[], { n: number | null }>(`SELECT max(id) AS n FROM ${table}`).get()
  // The file's keys as it was opened go into the first filter; keys written since, into the
  // last. A full filter is never rebuilt (that read the whole table again, with every claim
  // looking meanwhile): the next, twice as large, takes the keys that follow, and a key may be
  // in any of them. Each adds its ~1 % of false positives: seven filters by ten million keys
  // written (a new key's claim then looks about once in fifteen), each a look-up of one cache
  // line.
  const filter = new BloomFilter(Math.max(MIN_CAPACITY, 2 * (highest?.n ?? 0)))
  const filters = [filter]
  let newest = filter
  let ready = false
  let skipped = 0
  let closed = false
  let timer: ReturnType<typeof setTimeout> | undefined

  // Statements belong to one connection handle: the writer's, or the read connection's.
  const perHandle = new WeakMap<
    Database.Database,
    {
      chunk: Database.Statement<[number, number], { id: number; scope: string; key: string }>
      schemaVersion: Database.Statement<[], number>
      probe: Database.Statement<[]>
    }
  >()
  const statementsOn = (handle: Database.Database) => {
    let statements = perHandle.get(handle)
    if (statements === undefined) {
      statements = {
        chunk: handle.prepare(
          `SELECT id, scope, key FROM ${table} WHERE id > ? ORDER BY id LIMIT ?`,
        ),
        schemaVersion: handle.prepare<[], number>('PRAGMA schema_version').pluck(),
        // Fails with "no such table" once the table is gone, as the claim's look-up would.
        probe: handle.prepare(`SELECT 1 FROM ${table} WHERE 0`),
      }
      perHandle.set(handle, statements)
    }
    return statements
  }
  // The schema as the read-in began: any change since (a table dropped, or only created) is
  // checked once with the probe, on the next claim that would skip its look-up.
  let schemaVersion = statementsOn(db).schemaVersion.get() ?? 0

  /** Reads the records from `afterId` on, a chunk per turn, into the first filter. */
  const readIn = (afterId: number) => {
    timer = setTimeout(() => {
      timer = undefined
      if (closed) return
      connection
        .read((handle) => statementsOn(handle).chunk.all(afterId, CHUNK_ROWS))
        .then(
          (rows) => {
            if (closed) return
            for (const row of rows) filter.add(recordId(row.scope, row.key))
            const last = rows.at(-1)
            if (rows.length < CHUNK_ROWS || last === undefined) ready = true
            else readIn(last.id)
          },
          // A file that cannot be read now is read again later; claims look meanwhile. A
          // connection closed under the store is not coming back.
          () => {
            if (!closed && db.open) readInLater(afterId)
          },
        )
    }, 0)
    timer.unref()
  }
  const readInLater = (afterId: number) => {
    timer = setTimeout(() => {
      readIn(afterId)
    }, 1_000)
    timer.unref()
  }
  readIn(0)
  const mightContain = (id: string) => {
    for (const each of filters) if (each.mightContain(id)) return true
    return false
  }

  return {
    mayHold(scope, key, handle) {
      if (!ready || mightContain(recordId(scope, key))) return true
      const statements = statementsOn(handle)
      const version = statements.schemaVersion.get() ?? 0
      if (version !== schemaVersion) {
        statements.probe.get()
        schemaVersion = version
      }
      skipped++
      return false
    },
    add(scope, key) {
      // Past its size a filter would say "maybe" to ever more keys: the next one takes over.
      if (newest.added >= newest.capacity) {
        newest = new BloomFilter(2 * newest.capacity)
        filters.push(newest)
      }
      newest.add(recordId(scope, key))
    },
    stats: () => ({
      ready,
      keys: filters.reduce((sum, each) => sum + each.added, 0),
      bytes: filters.reduce((sum, each) => sum + each.bytes, 0),
      filters: filters.length,
      skipped,
    }),
    close() {
      closed = true
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
    },
  }
}
