/** Markdown tables, ready to paste into docs/benchmarks.md. */

export type Align = 'left' | 'right'

export interface Column {
  readonly title: string
  readonly align?: Align
}

export function markdownTable(columns: readonly Column[], rows: readonly string[][]): string {
  const widths = columns.map((column, index) =>
    Math.max(3, column.title.length, ...rows.map((row) => (row[index] ?? '').length)),
  )
  const pad = (text: string, index: number) => {
    const width = widths[index] ?? 3
    return columns[index]?.align === 'right' ? text.padStart(width) : text.padEnd(width)
  }
  const line = (cells: readonly string[]) =>
    `| ${cells.map((cell, index) => pad(cell, index)).join(' | ')} |`
  const rule = `| ${widths
    .map((width, index) =>
      columns[index]?.align === 'right' ? `${'-'.repeat(width - 1)}:` : '-'.repeat(width),
    )
    .join(' | ')} |`
  return [line(columns.map((column) => column.title)), rule, ...rows.map(line)].join('\n')
}

/** A number with `digits` decimals and thousands separators; `n/a` for NaN or undefined. */
export function formatNumber(value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return 'n/a'
  return value.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  })
}

/** A signed number: `+12.3`, `-1.0`. */
export function formatSigned(value: number | undefined, digits = 1): string {
  if (value === undefined || !Number.isFinite(value)) return 'n/a'
  return `${value >= 0 ? '+' : ''}${formatNumber(value, digits)}`
}
