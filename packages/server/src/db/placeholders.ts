/**
 * Rewrites `?` placeholders as PostgreSQL's `$1, $2, ...`, skipping quoted strings and
 * identifiers, so that one query text serves both SQLite and PostgreSQL.
 */
export function toNumberedPlaceholders(sql: string): string {
  let out = ''
  let index = 0
  let quote: "'" | '"' | undefined
  for (const char of sql) {
    if (quote !== undefined) {
      if (char === quote) quote = undefined
      out += char
    } else if (char === "'" || char === '"') {
      quote = char
      out += char
    } else if (char === '?') {
      out += `$${String(++index)}`
    } else {
      out += char
    }
  }
  return out
}
