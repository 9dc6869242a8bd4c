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
})
