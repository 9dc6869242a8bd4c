/**
 * A blocked Bloom filter of strings: which ones were added, with false positives and never a
 * false negative. Each string sets 7 bits within one 512-bit block (one cache line), so a
 * look-up touches one line of memory; 10 bits a string give about 1 % false positives.
 */
export class BloomFilter {
  /** Strings it was sized for: past this many, false positives climb. */
  readonly capacity: number
  /** Strings added so far (repeats counted). */
  added = 0
  readonly #blocks: number
  readonly #words: Uint32Array

  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new TypeError(`Expected a positive integer capacity, got ${String(capacity)}.`)
    }
    this.capacity = capacity
    this.#blocks = Math.ceil((capacity * BITS_PER_STRING) / BLOCK_BITS)
    this.#words = new Uint32Array(this.#blocks * WORDS_PER_BLOCK)
  }

  /** Bytes the filter holds. */
  get bytes(): number {
    return this.#words.byteLength
  }

  add(value: string): void {
    this.added++
    const [block, probe] = hashes(value)
    const base = (block % this.#blocks) * WORDS_PER_BLOCK
    let bits = probe
    for (let i = 0; i < PROBES; i++) {
      const bit = bits & (BLOCK_BITS - 1)
      this.#words[base + (bit >>> 5)] = (this.#words[base + (bit >>> 5)] ?? 0) | (1 << (bit & 31))
      bits = next(bits)
    }
  }

  /** False: `value` was never added. True: it may have been. */
  mightContain(value: string): boolean {
    const [block, probe] = hashes(value)
    const base = (block % this.#blocks) * WORDS_PER_BLOCK
    let bits = probe
    for (let i = 0; i < PROBES; i++) {
      const bit = bits & (BLOCK_BITS - 1)
      if (((this.#words[base + (bit >>> 5)] ?? 0) & (1 << (bit & 31))) === 0) return false
      bits = next(bits)
    }
    return true
  }
}

const BITS_PER_STRING = 10
const BLOCK_BITS = 512
const WORDS_PER_BLOCK = BLOCK_BITS / 32
const PROBES = 7

/** Two independent 32-bit hashes of `value` (FNV-1a with two primes, each finished by fmix32). */
function hashes(value: string): [number, number] {
  let a = 0x811c9dc5
  let b = 0x050c5d1f ^ value.length
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i)
    a = Math.imul(a ^ code, 0x01000193)
    b = Math.imul(b ^ code, 0x5bd1e995)
  }
  return [fmix32(a) >>> 0, fmix32(b)]
}

/** The next probe of a block: one more mixing step, so that the 7 bits are independent. */
function next(bits: number): number {
  return fmix32(bits + 0x9e3779b9)
}

/** MurmurHash3's finaliser: every input bit moves about half the output bits. */
function fmix32(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h
}
