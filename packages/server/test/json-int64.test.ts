/**
 * The int64-keeping JSON parser against JSON.parse itself: the same texts accepted and
 * refused, the same values, except that integers past 2^53 come back exact, as bigints.
 */
import { describe, expect, it } from 'vitest'
import { parseJsonKeepingInt64, stringifyJsonWithInt64 } from '../src/domain/json-int64.js'

const UNSAFE = ['9007199254740993', '-9007199254740993', '1767225600000000000', '9'.repeat(1000)]

/** What the parser must give for `text`: JSON.parse's value with unsafe integers exact. */
function expected(text: string, literal: string | undefined): unknown {
  const value: unknown = JSON.parse(text)
  if (literal === undefined) return value
  return (value as { n: unknown }[]).map(() => ({ n: BigInt(literal) }))
}

describe('parseJsonKeepingInt64', () => {
  it('keeps every integer past 2^53 exact, wherever it stands, however long', () => {
    for (const literal of UNSAFE) {
      const text = `[{"n":${literal}},{"n" : ${literal} }]`
      expect(parseJsonKeepingInt64(text)).toEqual(expected(text, literal))
    }
  })

  it('refuses what JSON.parse refuses, leading zeros and broken numbers included', () => {
    for (const text of [
      '{"n":09007199254740993}',
      '{"n":-09007199254740993}',
      '{"n":01767225600000000000}',
      '{"n":0001767225600000000000}',
      '{"n":007}',
      '{"n":00}',
      '{"n":-}',
      '{"n":--9007199254740993}',
      '{"n":9007199254740993.}',
      '{"n":9007199254740993e}',
      '{"n":.9007199254740993}',
      '{"n":+9007199254740993}',
      '{"n":9007199254740993x}',
      '[9007199254740993,]',
      '9007199254740993 9007199254740993',
    ]) {
      expect(() => JSON.parse(text) as unknown, text).toThrow(SyntaxError)
      expect(() => parseJsonKeepingInt64(text), text).toThrow(SyntaxError)
    }
  })

  it('gives what JSON.parse gives where no integer is unsafe', () => {
    for (const text of [
      '{"n":9007199254740991}',
      '{"n":1.5e-3}',
      '{"n":123.25}',
      '{"n":1e400}',
      '{"n":-0}',
      '{"s":"9007199254740993","t":"\\"9007199254740993\\""}',
      '[0,1,-1,10,9007199254740991,-9007199254740991]',
    ]) {
      expect(parseJsonKeepingInt64(text), text).toEqual(JSON.parse(text))
    }
  })

  it('keeps a whole number past 2^53 exact in any notation', () => {
    for (const [literal, digits] of [
      ['9007199254740993.0', '9007199254740993'],
      ['9.007199254740993e15', '9007199254740993'],
      ['90071992547409930E-1', '9007199254740993'],
      ['1.767225600000000001e18', '1767225600000000001'],
      ['-9.007199254740993e+15', '-9007199254740993'],
    ] as const) {
      expect(parseJsonKeepingInt64(`{"n":${literal}}`), literal).toEqual({ n: BigInt(digits) })
    }
  })

  it('reads a fraction a double would round to a whole number as no integer at all', () => {
    for (const literal of [
      '2.00000000000000001',
      '1.0000000000000001',
      '1.7672256000000000001e18',
      '17672256000000000001.5',
      '1e-400',
      '-5e-330',
    ]) {
      const parsed = parseJsonKeepingInt64(`{"n":${literal}}`) as { n: number }
      expect(Number.isNaN(parsed.n), literal).toBe(true)
    }
    // Whole numbers and plain fractions read as JSON.parse reads them.
    for (const literal of ['2.0', '2.50e1', '1.5', '1e3', '0.0', '-0.0e5', '1e400']) {
      const text = `{"n":${literal}}`
      expect(parseJsonKeepingInt64(text), literal).toEqual(JSON.parse(text))
    }
  })

  it('writes back what it read, digit for digit', () => {
    for (const literal of UNSAFE) {
      const text = `{"n":${literal}}`
      expect(stringifyJsonWithInt64(parseJsonKeepingInt64(text))).toBe(text)
    }
  })
})
