import { randomBytes } from 'node:crypto'

// A marker no client can guess: integers that a plain JSON.parse would round travel through
// JSON.parse as marked strings and come out as bigints.
const MARKER = `\u0000int64:${randomBytes(8).toString('hex')}:`
// How the marker reads inside JSON text, where the NUL character is escaped.
const ESCAPED_MARKER = MARKER.replace('\u0000', '\\u0000')
const MARKED = new RegExp(`"${ESCAPED_MARKER.replace('\\', '\\\\')}(-?\\d+)"`, 'g')

// What a plain JSON.parse may round: a run of 16 digits (an integer past 2^53, or a fraction
// with more digits than a double holds), or a number with a fraction or an exponent.
const MAY_ROUND = /\d{16}|\d\.\d|\d[eE]/
// A number as it stands in the text, read where the scan is (sticky), however long: fraction
// and exponent included, so that only a whole integer literal is taken for one.
const NUMBER = /-?\d+(?:\.\d*)?(?:[eE][-+]?\d*)?/y
// JSON's own integer grammar: no leading zero. Anything else is left for JSON.parse to refuse.
const INTEGER = /^-?(?:0|[1-9]\d*)$/
// JSON's number grammar, with its parts: sign, integer digits, fraction digits, exponent.
const JSON_NUMBER = /^(-?)(0|[1-9]\d*)(?:\.(\d+))?(?:[eE]([-+]?\d+))?$/
// A whole number longer than this is far outside int64 as a double too: no need to be exact.
const MAX_EXACT_DIGITS = 40
/** What a fraction that a double would round to a whole number is marked as: no integer. */
const INEXACT = 'inexact'

/**
 * What a number literal must read as where a double would not be exact: the digits of a whole
 * number past 2^53 (`9007199254740993`, `9.007199254740993e15`), `INEXACT` for a fraction a
 * double would round to a whole number (`2.00000000000000001`, `1e-400`), or undefined where
 * JSON.parse is right (or refuses the literal).
 */
function exactForm(literal: string): string | undefined {
  if (INTEGER.test(literal)) return Number.isSafeInteger(Number(literal)) ? undefined : literal
  const parts = JSON_NUMBER.exec(literal)
  if (parts === null) return undefined
  const [, sign = '', whole = '', fraction = '', exponentText = '0'] = parts
  // The value is digits * 10^scale, once leading and trailing zeros are off the digits.
  const digits = `${whole}${fraction}`.replace(/^0+/, '')
  if (digits === '') return undefined
  const significant = digits.replace(/0+$/, '')
  const scale = Number(exponentText) - fraction.length + (digits.length - significant.length)
  if (scale < 0) return Number.isInteger(Number(literal)) ? INEXACT : undefined
  if (significant.length + scale > MAX_EXACT_DIGITS) return undefined
  const value = BigInt(`${sign}${significant}`) * 10n ** BigInt(scale)
  return Number.isSafeInteger(Number(value)) ? undefined : value.toString()
}

/**
 * JSON.parse, except that a number a double cannot hold exactly keeps its value: an integer
 * beyond Number.MAX_SAFE_INTEGER (in any notation) becomes a `bigint`, so that nanosecond
 * timestamps such as `1705312800123456789` stay exact, and a fraction that a double would round
 * to a whole number becomes `NaN`, which no integer check takes. Throws like JSON.parse on
 * malformed text.
 */
export function parseJsonKeepingInt64(text: string): unknown {
  // Most bodies (a subscription's, a pause's) hold small integers only: the native parser is
  // exact for them.
  if (!MAY_ROUND.test(text)) return JSON.parse(text)
  let out = ''
  let last = 0
  let index = 0
  while (index < text.length) {
    const char = text[index]
    if (char === '"') {
      // Skip a string literal, escapes included.
      index++
      while (index < text.length && text[index] !== '"') index += text[index] === '\\' ? 2 : 1
      index++
      continue
    }
    if (char === '-' || (char !== undefined && char >= '0' && char <= '9')) {
      NUMBER.lastIndex = index
      const literal = NUMBER.exec(text)?.[0] ?? char
      const exact = exactForm(literal)
      if (exact !== undefined) {
        out += `${text.slice(last, index)}"${ESCAPED_MARKER}${exact}"`
        last = index + literal.length
      }
      index += literal.length
      continue
    }
    index++
  }
  out += text.slice(last)
  return JSON.parse(out, (_key, value: unknown) => {
    if (typeof value !== 'string' || !value.startsWith(MARKER)) return value
    const exact = value.slice(MARKER.length)
    return exact === INEXACT ? Number.NaN : BigInt(exact)
  })
}

/**
 * JSON.stringify that writes a `bigint` as a JSON integer, digit for digit (JSON.stringify
 * itself refuses bigints, and a number would round nanoseconds past 2^53).
 */
export function stringifyJsonWithInt64(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    typeof item === 'bigint' ? `${MARKER}${item.toString()}` : item,
  ).replace(MARKED, '$1')
}
