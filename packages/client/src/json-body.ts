import { randomBytes } from 'node:crypto'

// A marker no value can hold by chance: a bigint travels through JSON.stringify as a marked
// string, and the marks come off as the text is finished.
const MARKER = `\u0000int64:${randomBytes(8).toString('hex')}:`
const MARKED = new RegExp(`"\\\\u0000${MARKER.slice(1)}(-?\\d+)"`, 'g')

/**
 * A request body as JSON, where a `bigint` is written as a JSON integer digit for digit: an
 * int64 id or a nanosecond time past 2^53 goes out exact, not rounded as a number would be
 * (JSON.stringify itself refuses bigints).
 *
 * @throws {TypeError} for what JSON.stringify cannot write (a cycle).
 */
export function stringifyBody(value: unknown): string {
  const text = JSON.stringify(value, (_key, item: unknown) =>
    typeof item === 'bigint' ? `${MARKER}${item.toString()}` : item,
  ) as string | undefined
  if (text === undefined) throw new TypeError('Expected a request body that JSON can hold.')
  return text.replace(MARKED, '$1')
}
