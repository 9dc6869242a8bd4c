import { IdempotencyKeyInvalidError } from './errors.js'

/** The contract's upper bound on the raw header value, checked before any pattern runs. */
export const MAX_KEY_LENGTH = 128

const HEX32 = /^[0-9a-fA-F]{32}$/
const HYPHENATED = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const URN_PREFIX = 'urn:uuid:'

/**
 * Parses one `Idempotency-Key` value to its canonical form: the UUID's 128 bits as lowercase
 * hyphenated text. Accepts the hyphenated, simple (32 hex), braced and URN forms in any letter
 * case; optional whitespace (space, tab) around the value is not part of it.
 *
 * @throws {IdempotencyKeyInvalidError} for an empty, over-long or non-UUID value.
 */
export function parseIdempotencyKey(raw: string): string {
  if (raw.length > MAX_KEY_LENGTH)
    throw new IdempotencyKeyInvalidError('longer than 128 characters')
  const value = raw.replace(/^[ \t]+|[ \t]+$/g, '')
  if (value === '') throw new IdempotencyKeyInvalidError('empty')

  let hyphenated: string | undefined
  if (value.length === 32 && HEX32.test(value)) {
    return canonical(
      `${value.slice(0, 8)}-${value.slice(8, 12)}-${value.slice(12, 16)}-${value.slice(16, 20)}-${value.slice(20)}`,
    )
  } else if (value.length === 36) {
    hyphenated = value
  } else if (value.length === 38 && value.startsWith('{') && value.endsWith('}')) {
    hyphenated = value.slice(1, -1)
  } else if (
    value.length === 45 &&
    value.slice(0, URN_PREFIX.length).toLowerCase() === URN_PREFIX
  ) {
    hyphenated = value.slice(URN_PREFIX.length)
  }
  if (hyphenated === undefined || !HYPHENATED.test(hyphenated)) {
    throw new IdempotencyKeyInvalidError('not a UUID')
  }
  return canonical(hyphenated)
}

function canonical(hyphenated: string): string {
  return hyphenated.toLowerCase()
}

/**
 * Reads the key from every value the request carried for the header, one entry per header
 * line. No line: `null` (the request is not keyed). Two or more lines: a format error, even when
 * they agree, because intermediaries may merge or drop repeated lines and the client's intent
 * is then unknowable.
 *
 * @throws {IdempotencyKeyInvalidError}
 */
export function parseIdempotencyKeyHeader(values: readonly string[]): string | null {
  if (values.length === 0) return null
  if (values.length > 1) throw new IdempotencyKeyInvalidError('header repeated')
  return parseIdempotencyKey(values[0] ?? '')
}

/**
 * Collects the values of one header from Node's `rawHeaders` (name, value, name, value, ...),
 * which keeps repeated lines apart where `headers` would join them with ", ".
 */
export function headerValues(rawHeaders: readonly string[], lowerCaseName: string): string[] {
  const values: string[] = []
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (
      name !== undefined &&
      name.length === lowerCaseName.length &&
      name.toLowerCase() === lowerCaseName
    ) {
      values.push(rawHeaders[i + 1] ?? '')
    }
  }
  return values
}
