/**
 * What a `Range` request header asks of a file of `size` bytes (RFC 9110, section 14):
 *
 * - `whole`: no header, one this server may ignore (another unit, several ranges, bad syntax),
 *   or an `If-Range` that no longer matches: answer 200 with the whole file;
 * - `range`: one satisfiable range, `start` to `end` inclusive: answer 206;
 * - `unsatisfiable`: a well-formed single range that starts at or past the end: answer 416.
 */
export type ByteRange =
  | { readonly kind: 'whole' }
  | { readonly kind: 'range'; readonly start: number; readonly end: number }
  | { readonly kind: 'unsatisfiable' }

// The unit is case-insensitive (RFC 9110, section 14.1); positions have any number of digits.
const SINGLE_RANGE = /^bytes=(\d*)-(\d*)$/i

/**
 * Reads the `Range` header against the file's size. One range only: a multi-range request is
 * answered whole, which RFC 9110 allows, rather than as multipart/byteranges, which download
 * tools do not need for resuming.
 *
 * `ifRange` is the `If-Range` header and `etag` the file's entity tag: a range of a file that
 * changed since the client's first part would splice two files together, so a validator that
 * does not match asks for the whole file.
 */
export function parseByteRange(
  header: string | undefined,
  size: number,
  ifRange: string | undefined,
  etag: string,
): ByteRange {
  if (header === undefined) return { kind: 'whole' }
  if (ifRange !== undefined && ifRange.trim() !== etag) return { kind: 'whole' }
  const match = SINGLE_RANGE.exec(header.trim().replace(/\s+/g, ''))
  if (match === null) return { kind: 'whole' }
  const [, first = '', last = ''] = match
  if (first === '' && last === '') return { kind: 'whole' }
  // Compared exactly: a position past 2^53 is no less past the end for being long.
  const whole = BigInt(size)
  if (first === '') {
    // `bytes=-N`: the last N bytes. A suffix of zero bytes selects nothing.
    const length = BigInt(last)
    if (length === 0n || size === 0) return { kind: 'unsatisfiable' }
    return { kind: 'range', start: length >= whole ? 0 : size - Number(length), end: size - 1 }
  }
  const start = BigInt(first)
  // A last position before the first is not a range at all (ignored), not an unsatisfiable one.
  if (last !== '' && BigInt(last) < start) return { kind: 'whole' }
  if (start >= whole) return { kind: 'unsatisfiable' }
  const end = last === '' || BigInt(last) >= whole ? size - 1 : Number(last)
  return { kind: 'range', start: Number(start), end }
}
