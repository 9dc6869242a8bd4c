/** asctime's date (`Sun Nov  6 08:49:37 1994`), the one HTTP-date form without a zone. */
const ASCTIME = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/

/**
 * Parses a `Retry-After` header (RFC 9110, section 10.2.3) into milliseconds from `nowMs`:
 * either delay-seconds (`120`) or an HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`). A date in
 * the past means "now" (0). Anything else is ignored (undefined): a malformed header must not
 * stop a retry, the backoff applies instead.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs: number,
): number | undefined {
  if (value === null || value === undefined) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000
  // Date.parse accepts far more than HTTP-dates (e.g. "1"), so require a weekday-led or
  // RFC 850 / asctime shape: all three HTTP-date forms start with a day name.
  if (!/^[A-Za-z]{3}/.test(trimmed)) return undefined
  // Every HTTP-date is GMT, but asctime's form does not say so, and Date.parse would read it
  // in the local zone.
  const atMs = Date.parse(ASCTIME.test(trimmed) ? `${trimmed} GMT` : trimmed)
  if (Number.isNaN(atMs)) return undefined
  return Math.max(0, atMs - nowMs)
}
