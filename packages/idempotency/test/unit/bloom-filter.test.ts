import { describe, expect, it } from 'vitest'
import { BloomFilter } from '../../src/store/bloom-filter.js'

const id = (i: number) =>
  `11:acct_${String(i % 97)}:${String(i).padStart(8, '0')}-5e1f-4c2a-9d3b-7a6c5b4e3f21`

describe('the Bloom filter of keys', () => {
  it('never forgets a key it was given, and says no to about 1 % of others at its capacity', () => {
    const filter = new BloomFilter(50_000)
    for (let i = 0; i < 50_000; i++) filter.add(id(i))
    for (let i = 0; i < 50_000; i++) expect(filter.mightContain(id(i))).toBe(true)
    let falsePositives = 0
    for (let i = 50_000; i < 150_000; i++) if (filter.mightContain(id(i))) falsePositives++
    // 10 bits a key and 7 probes in one block: 1 % in theory, a little more for blocking.
    expect(falsePositives / 100_000).toBeLessThan(0.02)
    expect(filter.added).toBe(50_000)
    expect(filter.bytes).toBe(Math.ceil((50_000 * 10) / 512) * 64)
  })

  it('says no to everything while empty', () => {
    const filter = new BloomFilter(1)
    for (let i = 0; i < 1_000; i++) expect(filter.mightContain(id(i))).toBe(false)
  })

  it.each([0, -1, 1.5, Number.NaN])('refuses a capacity of %s', (capacity) => {
    expect(() => new BloomFilter(capacity)).toThrow(TypeError)
  })
})
