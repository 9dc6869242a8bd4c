import type { StoredResponse } from '../core/record.js'

export interface CompletedRecord {
  readonly fingerprint: string
  readonly response: StoredResponse
  /**
   * When the record expires, on this process's clock (`Date.now()` or the store's test clock):
   * a store whose expiry lives on another clock converts it when it learns the record.
   */
  readonly expiresAt: number
}

export interface CompletedCacheOptions {
  /**
   * What the cache may hold in all, counting bodies, headers and bookkeeping.
   * @default 16_777_216 (16 MiB)
   */
  readonly maxBytes?: number
  /**
   * Larger records are never cached: a few huge responses must not evict thousands of small
   * ones, and they are read from the store when replayed.
   * @default 65_536 (64 KiB)
   */
  readonly maxEntryBytes?: number
}

export interface CompletedCacheStats {
  readonly entries: number
  readonly bytes: number
  readonly hits: number
  readonly misses: number
}

/**
 * Completed records, kept so that a replay costs no database read. Safe because a completed
 * record never changes until it expires, an entry is never served past its expiry, and a store
 * puts an entry here only once the record is committed. Bounded by bytes; entries not hit
 * since eviction last passed them go first (an approximation of least recently used).
 */
export interface CompletedCache {
  get(id: string, now: number): CompletedRecord | undefined
  set(id: string, record: CompletedRecord): void
  delete(id: string): void
  stats(): CompletedCacheStats
}

/**
 * Per-entry memory beyond the bytes of its strings and body: the entry, record, response and
 * headers objects, the body's Buffer and ArrayBuffer, the map slot, string headers. Measured
 * on Node 20 with records like the server's (a 130-byte JSON body, two headers): about 2.5 KB
 * of heap and external memory per entry, of which the strings and body count 0.64 KB.
 */
const ENTRY_OVERHEAD_BYTES = 1_900

export function createCompletedCache(options: CompletedCacheOptions = {}): CompletedCache {
  const maxBytes = nonNegative('cacheMaxBytes', options.maxBytes, 16 * 1024 * 1024)
  const maxEntryBytes = nonNegative('cacheMaxEntryBytes', options.maxEntryBytes, 64 * 1024)
  // In insertion order, oldest first. A hit only marks its entry: moving it to the end (a
  // delete and a set) on every hit costs a near-full Map a rehash every few thousand hits,
  // which made a replay from a full cache four times slower than from an empty one. Eviction
  // gives a marked entry a second chance instead (the CLOCK approximation of LRU).
  const entries = new Map<string, CacheEntry>()
  let bytes = 0
  let hits = 0
  let misses = 0

  const remove = (id: string) => {
    const entry = entries.get(id)
    if (entry === undefined) return
    entries.delete(id)
    bytes -= entry.bytes
  }

  // One iterator kept across evictions: a new one would start at the front of the Map's
  // table and step over every entry deleted there since the last rehash, on every eviction.
  // A Map iterator survives deletes and rehashes, and reaches entries set after it was made.
  let cursor = entries.entries()
  const evict = () => {
    let restarted = false
    while (bytes > maxBytes) {
      const next = cursor.next()
      if (next.done === true) {
        // Nothing left to pass over would mean the bound cannot hold: never loop for ever.
        if (restarted || entries.size === 0) return
        restarted = true
        cursor = entries.entries()
        continue
      }
      const [id, entry] = next.value
      entries.delete(id)
      if (entry.used) {
        entry.used = false
        entries.set(id, entry)
      } else {
        bytes -= entry.bytes
      }
    }
  }

  return {
    get(id, now) {
      const entry = entries.get(id)
      if (entry === undefined || entry.record.expiresAt <= now) {
        if (entry !== undefined) remove(id)
        misses++
        return undefined
      }
      hits++
      entry.used = true
      return entry.record
    },
    set(id, record) {
      const size = sizeOf(id, record)
      remove(id)
      if (size > maxEntryBytes || size > maxBytes) return
      entries.set(id, { record: ownBody(record), bytes: size, used: false })
      bytes += size
      if (bytes > maxBytes) evict()
    },
    delete: remove,
    stats: () => ({ entries: entries.size, bytes, hits, misses }),
  }
}

/**
 * The record with a body that owns its memory. A small body is usually a view into a larger
 * allocation (Node's 8 KiB pool slab, a socket's read chunk, a driver's row buffer), and a
 * cached view keeps all of it alive: thousands of 100-byte bodies held 8 KiB each, far past
 * `maxBytes`. Copied into an allocation of its own size, the cache holds what it counts.
 */
function ownBody(record: CompletedRecord): CompletedRecord {
  const body = record.response.body
  if (body.byteOffset === 0 && body.buffer.byteLength === body.byteLength) return record
  // Not Buffer.from, which takes a small body into a pool slab again.
  const own = Buffer.allocUnsafeSlow(body.byteLength)
  own.set(body)
  return { ...record, response: { ...record.response, body: own } }
}

interface CacheEntry {
  readonly record: CompletedRecord
  readonly bytes: number
  /** Hit since it was last passed over by eviction. */
  used: boolean
}

function sizeOf(id: string, record: CompletedRecord): number {
  let size = ENTRY_OVERHEAD_BYTES + id.length * 2 + record.fingerprint.length * 2
  size += record.response.body.byteLength + record.response.requestId.length * 2
  for (const [name, value] of Object.entries(record.response.headers)) {
    size += (name.length + value.length) * 2
  }
  return size
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`Expected \`${name}\` to be a non-negative integer, got ${String(value)}.`)
  }
  return value
}
