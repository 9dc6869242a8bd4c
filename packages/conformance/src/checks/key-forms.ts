/** One spelling of a key, and how the report names it. */
export interface KeySpelling {
  readonly name: string
  readonly value: string
}

/**
 * The spellings of one UUID that the contract says are the same key: the four forms, in lower,
 * upper and mixed letter case, the URN prefix in upper case, and whitespace around the value.
 * `uuid` is lowercase hyphenated.
 */
export function spellingsOf(uuid: string): KeySpelling[] {
  const simple = uuid.replaceAll('-', '')
  const mixed = Array.from(uuid, (char) => char)
    .map((char, i) => (i % 2 === 0 ? char.toUpperCase() : char))
    .join('')
  return [
    { name: 'hyphenated', value: uuid },
    { name: 'hyphenated, upper case', value: uuid.toUpperCase() },
    { name: 'hyphenated, mixed case', value: mixed },
    { name: 'simple (32 hex digits)', value: simple },
    { name: 'simple, upper case', value: simple.toUpperCase() },
    { name: 'braced', value: `{${uuid}}` },
    { name: 'braced, upper case', value: `{${uuid.toUpperCase()}}` },
    { name: 'URN', value: `urn:uuid:${uuid}` },
    { name: 'URN, prefix and digits in upper case', value: `URN:UUID:${uuid.toUpperCase()}` },
    { name: 'URN, mixed-case prefix', value: `Urn:Uuid:${uuid}` },
    { name: 'hyphenated, with spaces and a tab around it', value: `  ${uuid}\t` },
  ]
}

/**
 * Values that are almost a UUID in one of the four forms, and are not: each must be refused
 * with the key-format error. `uuid` is lowercase hyphenated.
 */
export function nearMissesOf(uuid: string): KeySpelling[] {
  const simple = uuid.replaceAll('-', '')
  const withCharAt = (index: number, char: string) =>
    uuid.slice(0, index) + char + uuid.slice(index + 1)
  return [
    { name: 'hyphenated, one digit short', value: uuid.slice(0, -1) },
    { name: 'hyphenated, one digit too many', value: `${uuid}a` },
    { name: 'simple, 31 digits', value: simple.slice(0, -1) },
    { name: 'simple, 33 digits', value: `${simple}a` },
    { name: 'hyphenated with a "g"', value: withCharAt(0, 'g') },
    { name: 'hyphenated with an "é" (Latin-1)', value: withCharAt(2, '\u00e9') },
    {
      name: 'hyphens in the wrong places',
      value: `${simple.slice(0, 7)}-${simple.slice(7, 12)}-${simple.slice(12, 16)}-${simple.slice(16, 20)}-${simple.slice(20)}`,
    },
    { name: 'hyphenated with an inner space', value: withCharAt(8, ' ') },
    { name: 'braced simple form', value: `{${simple}}` },
    { name: 'opening brace only', value: `{${uuid}` },
    { name: 'closing brace only', value: `${uuid}}` },
    { name: 'double braces', value: `{{${uuid}}}` },
    { name: 'URN with the simple form', value: `urn:uuid:${simple}` },
    { name: 'URN with braces', value: `urn:uuid:{${uuid}}` },
    { name: 'URN without "urn:"', value: `uuid:${uuid}` },
    { name: 'URN prefix alone', value: 'urn:uuid:' },
    { name: 'two keys on one line', value: `${uuid}, ${uuid}` },
    { name: 'a word', value: 'not-a-uuid' },
    { name: 'a number', value: '12345' },
  ]
}
