import type { StoredResponse } from '../core/record.js'
import { recordId } from './settle-listeners.js'

export interface CompletedRecord {
  readonly fingerprint: string
  readonly response: StoredResponse
  readonly expiresAt: number
}

/**
 * Completed records, kept so that a replay costs no database read. Safe because a completed
 * record never changes until it expires, and an entry is never served past its expiry.
 * Least recently used entries go first once `capacity` is reached.
 */
export interface CompletedCache {
  get(scope: string, key: string, now: number): CompletedRecord | undefined
  set(scope: string, key: string, record: CompletedRecord): void
}

export function createCompletedCache(capacity: number): CompletedCache {
  if (!Number.isSafeInteger(capacity) || capacity < 0) {
    throw new TypeError(
      `Expected \`cacheSize\` to be a non-negative integer, got ${String(capacity)}.`,
    )
  }
  const entries = new Map<string, CompletedRecord>()
  return {
    get(scope, key, now) {
      if (capacity === 0) return undefined
      const id = recordId(scope, key)
      const record = entries.get(id)
      if (record === undefined) return undefined
      entries.delete(id)
      if (record.expiresAt <= now) return undefined
      entries.set(id, record)
      return record
    },
    set(scope, key, record) {
      if (capacity === 0) return
      const id = recordId(scope, key)
      entries.delete(id)
      entries.set(id, record)
      if (entries.size > capacity) {
        const oldest = entries.keys().next()
        if (oldest.done !== true) entries.delete(oldest.value)
      }
    },
  }
}
