/**
 * Whether fetch can send `value` as a header value: Latin-1 only (fetch converts header values
 * to bytes and throws on a character above U+00FF), and no NUL, CR or LF (which would end the
 * header). Checked up front because fetch throws before anything is sent, which would
 * otherwise look like a connection failure and be retried in vain.
 */
export function isHeaderValue(value: string): boolean {
  return /^[^\0\r\n\u0100-\uffff]*$/.test(value)
}
