/**
 * The cache of completed records holds what it counts: a body that is a view into a larger
 * allocation (a pool slab, a socket's read chunk, a driver's row buffer) is copied, or every
 * small cached body would keep its whole allocation alive (seen in the soak: 8 KiB per
 * 100-byte body on PostgreSQL, RSS +40 % in five minutes).
 */
import { describe, expect, it } from 'vitest'
import { createCompletedCache } from '../../src/store/completed-cache.js'
import type { CompletedRecord } from '../../src/store/completed-cache.js'

function recordWith(body: Uint8Array): CompletedRecord {
  return {
    fingerprint: 'f'.repeat(64),
    response: {
      status: 201,
      headers: { 'content-type': 'application/json' },
      body,
      requestId: 'req_1',
    },
    expiresAt: Number.MAX_SAFE_INTEGER,
  }
}

describe('the completed-record cache', () => {
  it('keeps a copy of a body that is a view into a larger allocation, not the allocation', () => {
    const cache = createCompletedCache()
    const chunk = Buffer.alloc(1024 * 1024, 0x61)
    const body = chunk.subarray(4096, 4196)
    cache.set('scope\nkey', recordWith(body))
    const cached = cache.get('scope\nkey', 0)?.response.body
    expect(cached?.buffer.byteLength).toBe(100)
    expect(Buffer.from(cached ?? []).equals(body)).toBe(true)
    // The copy is the cache's own: the caller's buffer can change without changing a replay.
    chunk.fill(0x62)
    expect(Buffer.from(cached ?? []).toString()).toBe('a'.repeat(100))
  })

  it('copies a small Buffer made from a string, which shares Node’s pool slab', () => {
    const cache = createCompletedCache()
    const body = Buffer.from('{"id":"sub_1"}')
    expect(body.buffer.byteLength).toBeGreaterThan(body.byteLength)
    cache.set('scope\nkey', recordWith(body))
    expect(cache.get('scope\nkey', 0)?.response.body.buffer.byteLength).toBe(body.byteLength)
  })

  it('keeps a body that owns its memory as it is', () => {
    const cache = createCompletedCache()
    const body = new Uint8Array([1, 2, 3])
    cache.set('scope\nkey', recordWith(body))
    expect(cache.get('scope\nkey', 0)?.response.body).toBe(body)
  })

  it('counts each entry at what it costs in memory, so the bound holds in bytes', () => {
    const cache = createCompletedCache({ maxBytes: 1024 * 1024 })
    for (let index = 0; index < 10_000; index++) {
      cache.set(`scope\n${String(index)}`, recordWith(Buffer.from(`{"id":"sub_${String(index)}"}`)))
    }
    const { entries, bytes } = cache.stats()
    expect(bytes).toBeLessThanOrEqual(1024 * 1024)
    // About 2 KB of objects per entry besides its strings and body: a 1 MiB cache holds a
    // few hundred such records, not the 1,000s that counting only their bytes would allow.
    expect(entries).toBeGreaterThan(200)
    expect(entries).toBeLessThan(1_000)
  })

  it('evicts what was not hit first, and keeps within its bytes however it is hit', () => {
    const body = Buffer.allocUnsafeSlow(100)
    const probe = createCompletedCache()
    probe.set('probe', recordWith(body))
    const entryBytes = probe.stats().bytes
    // Room for ten entries.
    const cache = createCompletedCache({ maxBytes: entryBytes * 10 + entryBytes / 2 })
    const id = (n: number) => `k${String(n).padStart(4, '0')}`
    for (let n = 0; n < 10; n++) cache.set(id(n), recordWith(body))
    // The oldest three are hit: eviction passes over them.
    for (const n of [0, 1, 2]) expect(cache.get(id(n), 0)).toBeDefined()
    for (let n = 10; n < 15; n++) cache.set(id(n), recordWith(body))
    const kept = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) => from + i).filter(
        (n) => cache.get(id(n), 0) !== undefined,
      )
    expect(kept(0, 3)).toEqual([0, 1, 2])
    expect(kept(3, 8)).toEqual([])
    expect(kept(8, 15)).toEqual([8, 9, 10, 11, 12, 13, 14])
    expect(cache.stats().entries).toBe(10)
    // Every entry hit, then many more set: the bound still holds, one set at a time.
    for (let round = 0; round < 3; round++) {
      for (let n = 0; n < 40; n++) cache.get(id(n), 0)
      for (let n = 0; n < 40; n++) {
        cache.set(id(100 + round * 40 + n), recordWith(body))
        expect(cache.stats().bytes).toBeLessThanOrEqual(entryBytes * 10 + entryBytes / 2)
        expect(cache.stats().entries).toBe(10)
      }
    }
  })
})
