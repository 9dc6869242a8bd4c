export interface Column<T> {
  readonly header: string
  readonly value: (row: T) => string
}

/**
 * Lays rows out as a plain-text table: a header line, then one line per row, columns padded
 * to their widest cell and two spaces apart. No trailing spaces, so output diffs cleanly.
 */
export function formatTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = [columns.map((column) => column.header)]
  for (const row of rows) cells.push(columns.map((column) => oneLine(column.value(row))))
  const widths = columns.map((_, index) =>
    Math.max(...cells.map((line) => (line[index] ?? '').length)),
  )
  return cells
    .map((line) =>
      line
        .map((cell, index) => cell.padEnd(widths[index] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

/** `label  value` lines for one resource, labels padded to the longest. */
export function formatDetails(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...pairs.map(([label]) => label.length))
  return pairs.map(([label, value]) => `${label.padEnd(width)}  ${oneLine(value)}`).join('\n')
}

/** A newline in a cell would break the table's rows apart. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ')
}
