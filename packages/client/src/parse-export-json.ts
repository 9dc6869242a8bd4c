/** The export job's fields that hold int64 nanoseconds: its range. */
const NANOSECOND_FIELDS = /"(start_time|end_time)"(\s*:\s*)(-?\d+)/g

/**
 * Parses an export job (or a page or list of them) with its nanosecond fields as decimal
 * strings. JSON.parse would turn 1767225600000000001 into 1767225600000000000: today's
 * nanosecond times are above 2^53, where a double cannot hold every integer. Node 20 has no
 * JSON.parse source access, so the bare integers of those fields are quoted first; a field
 * name inside a string value is escaped (`\"start_time\"`) and so never matches.
 */
export function parseExportJson(bodyText: string): unknown {
  return JSON.parse(bodyText.replace(NANOSECOND_FIELDS, '"$1"$2"$3"'))
}
