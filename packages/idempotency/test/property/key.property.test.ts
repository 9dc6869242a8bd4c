/**
 * The `Idempotency-Key` parser against an oracle written from the contract alone (char by char,
 * no regular expressions, ASCII-only case folding): valid keys in every form, near misses of
 * them, unicode, control characters and lengths around the 128-character bound.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  IdempotencyKeyInvalidError,
  MAX_KEY_LENGTH,
  parseIdempotencyKey,
  parseIdempotencyKeyHeader,
} from '@ticksupply/idempotency'

const RUNS = 2_000
const HEX_DIGITS = '0123456789abcdefABCDEF'

const isHexDigit = (char: string) => char.length === 1 && HEX_DIGITS.includes(char)
const asciiLower = (text: string) => text.replace(/[A-Z]/g, (char) => char.toLowerCase())

/**
 * The contract's key: at most 128 characters as sent; space and tab around it are not part of
 * it; then one of the four forms of a UUID, hex in any case, the URN prefix in any case. The
 * key is the 128-bit value, written lowercase hyphenated. `null`: a format error.
 */
function oracle(raw: string): string | null {
  if (raw.length > MAX_KEY_LENGTH) return null
  let start = 0
  let end = raw.length
  const isSpace = (char: string | undefined) => char === ' ' || char === '\t'
  while (start < end && isSpace(raw[start])) start++
  while (end > start && isSpace(raw[end - 1])) end--
  let value = raw.slice(start, end)
  let digits: string
  if (value.length === 32) {
    digits = value
  } else {
    if (value.length === 45 && asciiLower(value.slice(0, 9)) === 'urn:uuid:') value = value.slice(9)
    else if (value.length === 38 && value[0] === '{' && value[37] === '}')
      value = value.slice(1, 37)
    if (value.length !== 36) return null
    for (const position of [8, 13, 18, 23]) if (value[position] !== '-') return null
    digits = value.slice(0, 8) + value.slice(9, 13) + value.slice(14, 18) + value.slice(19, 23)
    digits += value.slice(24)
  }
  if (digits.length !== 32) return null
  for (let index = 0; index < digits.length; index++) {
    if (!isHexDigit(digits[index] ?? '')) return null
  }
  // Through the bytes, not the text: the key is the value.
  const bytes = Buffer.from(digits, 'hex')
  const hex = bytes.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** The parser's answer as the oracle's: the canonical key, or `null` for its own typed error. */
function parsed(raw: string): string | null {
  try {
    return parseIdempotencyKey(raw)
  } catch (error) {
    if (error instanceof IdempotencyKeyInvalidError) return null
    throw error
  }
}

type Form = 'hyphenated' | 'simple' | 'braced' | 'urn'

function render(bytes: Uint8Array, form: Form, upper: readonly boolean[], prefixCase: string) {
  const hex = Buffer.from(bytes)
    .toString('hex')
    .replace(/./g, (char, index: number) =>
      upper[index % upper.length] === true ? char.toUpperCase() : char,
    )
  const hyphenated = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
  switch (form) {
    case 'hyphenated':
      return hyphenated
    case 'simple':
      return hex
    case 'braced':
      return `{${hyphenated}}`
    case 'urn':
      return `${prefixCase}${hyphenated}`
  }
}

const whitespace = fc.string({ unit: fc.constantFrom(' ', '\t'), maxLength: 4 })
const urnPrefix = fc
  .array(fc.boolean(), { minLength: 9, maxLength: 9 })
  .map((upper) =>
    'urn:uuid:'.replace(/./g, (char, index: number) =>
      upper[index] === true ? char.toUpperCase() : char,
    ),
  )

/** A valid key in a random form and letter case, with random space or tab around it. */
const validKey = fc
  .record({
    bytes: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    form: fc.constantFrom<Form>('hyphenated', 'simple', 'braced', 'urn'),
    upper: fc.array(fc.boolean(), { minLength: 1, maxLength: 32 }),
    prefix: urnPrefix,
    before: whitespace,
    after: whitespace,
  })
  .map((parts) => ({
    ...parts,
    raw: `${parts.before}${render(parts.bytes, parts.form, parts.upper, parts.prefix)}${parts.after}`,
  }))

/** Characters a near miss may bring in: lookalikes, other spaces, controls, separators. */
const intruder = fc.constantFrom(
  'g',
  'G',
  'x',
  '-',
  '{',
  '}',
  ':',
  ' ',
  '\t',
  '\0',
  '\r',
  '\n',
  '\v',
  '\f',
  '\u0085',
  '\u00a0',
  '\u2028',
  '\u200b',
  '\ufeff',
  '０',
  'ａ',
  '٣',
  'é',
  'İ',
  'ı',
  'K',
  '😀',
  '\ud800',
)

/** One edit of a valid key: a character deleted, replaced, inserted, or two swapped. */
const nearMiss = fc
  .record({
    key: validKey,
    edit: fc.constantFrom('delete', 'replace', 'insert', 'swap'),
    at: fc.nat(),
    char: intruder,
  })
  .map(({ key, edit, at, char }) => {
    const raw = key.raw
    const index = raw.length === 0 ? 0 : at % raw.length
    switch (edit) {
      case 'delete':
        return raw.slice(0, index) + raw.slice(index + 1)
      case 'replace':
        return raw.slice(0, index) + char + raw.slice(index + 1)
      case 'insert':
        return raw.slice(0, index) + char + raw.slice(index)
      case 'swap':
        return index + 1 < raw.length
          ? raw.slice(0, index) + (raw[index + 1] ?? '') + (raw[index] ?? '') + raw.slice(index + 2)
          : raw
    }
  })

/** A valid key padded with spaces to a length around the bound. */
const aroundTheBound = fc
  .record({
    key: validKey,
    length: fc.integer({ min: MAX_KEY_LENGTH - 3, max: MAX_KEY_LENGTH + 3 }),
    left: fc.nat(),
  })
  .map(({ key, length, left }) => {
    const core = key.raw.trim()
    const padding = Math.max(0, length - core.length)
    const before = padding === 0 ? 0 : left % (padding + 1)
    return ' '.repeat(before) + core + '\t'.repeat(padding - before)
  })

/** Forms that look like keys to a careless parser: wrong wrappers and prefixes. */
const wrongWrapper = fc
  .record({
    key: validKey,
    wrap: fc.constantFrom(
      (k: string) => `[${k}]`,
      (k: string) => `{${k}`,
      (k: string) => `${k}}`,
      (k: string) => `urn:uuid${k}`,
      (k: string) => `uuid:${k}`,
      (k: string) => `urn:uuid:{${k}}`,
      (k: string) => `{urn:uuid:${k}}`,
      (k: string) => `urn:uuid:urn:uuid:${k}`,
      (k: string) => `"${k}"`,
      (k: string) => `${k},${k}`,
      (k: string) => k.replace(/-/g, '_'),
    ),
  })
  .map(({ key, wrap }) => wrap(render(key.bytes, 'hyphenated', key.upper, 'urn:uuid:')))

describe('parseIdempotencyKey against the oracle', () => {
  it('accepts every valid key in every form and case, as its value', () => {
    fc.assert(
      fc.property(validKey, ({ raw, bytes }) => {
        const key = parsed(raw)
        expect(key).toBe(oracle(raw))
        expect(Buffer.from((key ?? '').replace(/-/g, ''), 'hex').equals(Buffer.from(bytes))).toBe(
          true,
        )
      }),
      { numRuns: RUNS },
    )
  })

  it('gives one key for all the forms of one UUID, and two keys for two UUIDs', () => {
    fc.assert(
      fc.property(validKey, validKey, (a, b) => {
        const same = Buffer.from(a.bytes).equals(Buffer.from(b.bytes))
        expect(parsed(a.raw) === parsed(b.raw)).toBe(same)
      }),
      { numRuns: RUNS },
    )
  })

  it('agrees on near misses: one character deleted, replaced, inserted or swapped', () => {
    fc.assert(
      fc.property(nearMiss, (raw) => {
        expect(parsed(raw)).toBe(oracle(raw))
      }),
      { numRuns: RUNS },
    )
  })

  it('agrees on wrong wrappers and prefixes', () => {
    fc.assert(
      fc.property(wrongWrapper, (raw) => {
        expect(parsed(raw)).toBe(oracle(raw))
        expect(parsed(raw)).toBeNull()
      }),
      { numRuns: RUNS / 4 },
    )
  })

  it('agrees on lengths around 128 characters, counted as sent', () => {
    fc.assert(
      fc.property(aroundTheBound, (raw) => {
        expect(parsed(raw)).toBe(oracle(raw))
        expect(parsed(raw) !== null).toBe(raw.length <= MAX_KEY_LENGTH)
      }),
      { numRuns: RUNS },
    )
  })

  it('agrees on arbitrary unicode and control characters, and never throws anything else', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.string({ unit: 'grapheme-composite', maxLength: 60 }),
        ),
        (raw) => {
          expect(parsed(raw)).toBe(oracle(raw))
        },
      ),
      { numRuns: RUNS },
    )
  })
})

const REFUSED = Symbol('refused')

describe('parseIdempotencyKeyHeader', () => {
  it('reads no line as no key and refuses two or more lines, even identical ones', () => {
    fc.assert(
      fc.property(
        fc.array(
          validKey.map((key) => key.raw),
          { maxLength: 4 },
        ),
        (lines) => {
          let result: string | null | typeof REFUSED
          try {
            result = parseIdempotencyKeyHeader(lines)
          } catch (error) {
            if (!(error instanceof IdempotencyKeyInvalidError)) throw error
            result = REFUSED
          }
          if (lines.length === 0) expect(result).toBeNull()
          else if (lines.length > 1) expect(result).toBe(REFUSED)
          else expect(result).toBe(oracle(lines[0] ?? ''))
        },
      ),
      { numRuns: RUNS / 4 },
    )
  })
})
