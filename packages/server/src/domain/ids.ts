import { randomBytes } from 'node:crypto'

export type IdPrefix = 'sub' | 'spn' | 'exp' | 'art' | 'sch' | 'acct' | 'key'

let lastMs = 0
let sequence = 0

/**
 * `{prefix}_{32 lowercase hex}`, time-ordered like a UUIDv7: 48 bits of milliseconds, then a
 * 16-bit sequence that keeps ids made in one millisecond in order, then 64 random bits.
 */
export function newId(prefix: IdPrefix, nowMs: number = Date.now()): string {
  if (nowMs <= lastMs) {
    sequence = (sequence + 1) & 0xffff
    if (sequence === 0) lastMs += 1
  } else {
    lastMs = nowMs
    sequence = randomBytes(2).readUInt16BE() & 0x7fff
  }
  const time = lastMs.toString(16).padStart(12, '0')
  const seq = sequence.toString(16).padStart(4, '0')
  return `${prefix}_${time}${seq}${randomBytes(8).toString('hex')}`
}

const ID_PATTERN = /^[a-z]+_[0-9a-f]{32}$/

/** Whether `value` is shaped like an id of this prefix; a malformed id is answered as unknown. */
export function isId(prefix: IdPrefix, value: string): boolean {
  return value.startsWith(`${prefix}_`) && ID_PATTERN.test(value)
}
