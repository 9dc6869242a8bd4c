import { describe, expect, it } from 'vitest'
import {
  IdempotencyKeyInvalidError,
  headerValues,
  parseIdempotencyKey,
  parseIdempotencyKeyHeader,
} from '@ticksupply/idempotency'

const canonical = 'a1b2c3d4-e5f6-7890-abcd-ef1234567890'

describe('parseIdempotencyKey', () => {
  it.each([
    ['hyphenated', 'a1b2c3d4-e5f6-7890-abcd-ef1234567890'],
    ['hyphenated, upper case', 'A1B2C3D4-E5F6-7890-ABCD-EF1234567890'],
    ['simple', 'a1b2c3d4e5f67890abcdef1234567890'],
    ['simple, mixed case', 'A1b2C3d4E5f67890AbCdEf1234567890'],
    ['braced', '{a1b2c3d4-e5f6-7890-abcd-ef1234567890}'],
    ['braced, upper case', '{A1B2C3D4-E5F6-7890-ABCD-EF1234567890}'],
    ['URN', 'urn:uuid:a1b2c3d4-e5f6-7890-abcd-ef1234567890'],
    ['URN, prefix in upper case', 'URN:UUID:a1b2c3d4-e5f6-7890-abcd-ef1234567890'],
    ['URN, mixed case throughout', 'Urn:Uuid:A1B2C3D4-e5f6-7890-ABCD-ef1234567890'],
    ['surrounded by spaces and tabs', ' \t a1b2c3d4-e5f6-7890-abcd-ef1234567890\t '],
  ])('reads the %s form as the canonical key', (_form, raw) => {
    expect(parseIdempotencyKey(raw)).toBe(canonical)
  })

  it('accepts any version and variant', () => {
    expect(parseIdempotencyKey('00000000-0000-0000-0000-000000000000')).toBe(
      '00000000-0000-0000-0000-000000000000',
    )
    expect(parseIdempotencyKey('018f3a2b-7c4d-7e5f-8a9b-0c1d2e3f4a5b')).toBe(
      '018f3a2b-7c4d-7e5f-8a9b-0c1d2e3f4a5b',
    )
  })

  it.each([
    ['empty', ''],
    ['only whitespace', '   '],
    ['quoted (a structured-field string)', '"a1b2c3d4-e5f6-7890-abcd-ef1234567890"'],
    ['not hex', 'g1b2c3d4-e5f6-7890-abcd-ef1234567890'],
    ['one digit short', 'a1b2c3d4-e5f6-7890-abcd-ef123456789'],
    ['one digit long', 'a1b2c3d4-e5f6-7890-abcd-ef12345678901'],
    ['hyphens misplaced', 'a1b2c3d4e-5f6-7890-abcd-ef1234567890'],
    ['braces on the simple form', '{a1b2c3d4e5f67890abcdef1234567890}'],
    ['one brace', '{a1b2c3d4-e5f6-7890-abcd-ef1234567890'],
    ['URN without its prefix colon', 'urn:uuida1b2c3d4-e5f6-7890-abcd-ef12345678900'],
    ['URN of the simple form', 'urn:uuid:a1b2c3d4e5f67890abcdef1234567890'],
    ['a free-form string', 'order-12345'],
    ['whitespace inside', 'a1b2c3d4-e5f6 7890-abcd-ef1234567890'],
    ['two keys joined by a comma', `${canonical}, ${canonical}`],
    ['longer than 128 characters', `${' '.repeat(100)}${canonical}`],
  ])('refuses a key that is %s', (_what, raw) => {
    expect(() => parseIdempotencyKey(raw)).toThrow(IdempotencyKeyInvalidError)
  })

  it('gives the error a stable code', () => {
    try {
      parseIdempotencyKey('nope')
      expect.unreachable()
    } catch (error) {
      expect((error as IdempotencyKeyInvalidError).code).toBe('key_invalid')
    }
  })
})

describe('parseIdempotencyKeyHeader', () => {
  it('reads no header line as an unkeyed request', () => {
    expect(parseIdempotencyKeyHeader([])).toBeNull()
  })

  it('refuses two header lines, even with the same key', () => {
    expect(() => parseIdempotencyKeyHeader([canonical, canonical])).toThrow(
      IdempotencyKeyInvalidError,
    )
  })

  it('reads one line', () => {
    expect(parseIdempotencyKeyHeader([canonical.toUpperCase()])).toBe(canonical)
  })
})

describe('headerValues', () => {
  it('keeps repeated lines apart and matches names in any case', () => {
    const raw = ['Host', 'x', 'Idempotency-Key', 'one', 'X-Other', 'y', 'IDEMPOTENCY-KEY', 'two']
    expect(headerValues(raw, 'idempotency-key')).toEqual(['one', 'two'])
  })
})
