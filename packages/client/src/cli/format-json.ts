/** The fields the API sends as int64 nanoseconds (JSON integers) and the client keeps as strings. */
const NANOSECOND_FIELDS = new Set(['start_time', 'end_time'])

// A marker no value can contain (NUL is escaped in JSON text), so that unquoting touches only
// what the replacer marked.
const MARK = '\u0000ns:'
const MARKED = /"\\u0000ns:(\d+)"/g

/**
 * `--json` output: the API's JSON, pretty-printed, with int64 nanoseconds written as the API
 * writes them, bare integers, digit for digit (the client holds them as decimal strings, since a
 * JavaScript number would round them).
 */
export function formatJson(value: unknown): string {
  return JSON.stringify(
    value,
    (key, item: unknown) =>
      NANOSECOND_FIELDS.has(key) && typeof item === 'string' && /^\d{1,19}$/.test(item)
        ? `${MARK}${item}`
        : item,
    2,
  ).replace(MARKED, '$1')
}
