import { randomBytes } from 'node:crypto'

// A marker no client can guess: integers that a plain JSON.parse would round travel through
// JSON.parse as marked strings and come out as bigints.
const MARKER = `\u0000int64:${randomBytes(8).toString('hex')}:`
// How the marker reads inside JSON text, where the NUL character is escaped.
const ESCAPED_MARKER = MARKER.replace('\u0000', '\\u0000')
const MARKED = new RegExp(`"${ESCAPED_MARKER.replace('\\', '\\\\')}(-?\\d+)"`, 'g')

const SIXTEEN_DIGITS = /\d{16}/
// A number as it stands in the text, read where the scan is (sticky), however long: fraction
// and exponent included, so that only a whole integer literal is taken for one.
const NUMBER = /-?\d+(?:\.\d*)?(?:[eE][-+]?\d*)?/y
// JSON's own integer grammar: no leading zero. Anything else is left for JSON.parse to refuse.
const INTEGER = /^-?(?:0|[1-9]\d*)$/

/**
 * JSON.parse, except that an integer literal beyond Number.MAX_SAFE_INTEGER becomes a `bigint`
 * instead of a rounded number: nanosecond timestamps such as `1705312800123456789` stay exact.
 * Throws like JSON.parse on malformed text.
 */
export function parseJsonKeepingInt64(text: string): unknown {
  // An integer past 2^53 has at least 16 digits: without such a run the native parser is exact,
  // and most bodies (a subscription's, a pause's) take this path.
  if (!SIXTEEN_DIGITS.test(text)) return JSON.parse(text)
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
      if (INTEGER.test(literal) && !Number.isSafeInteger(Number(literal))) {
        out += `${text.slice(last, index)}"${ESCAPED_MARKER}${literal}"`
        last = index + literal.length
      }
      index += literal.length
      continue
    }
    index++
  }
  out += text.slice(last)
  return JSON.parse(out, (_key, value: unknown) =>
    typeof value === 'string' && value.startsWith(MARKER)
      ? BigInt(value.slice(MARKER.length))
      : value,
  )
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
