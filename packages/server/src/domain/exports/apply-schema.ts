import type { SchemaSnapshot } from './export-schemas.js'
import type { ColumnType, DeriveRule, MetaFormat } from './schema-definition.js'
import { parseColumnType } from './schema-definition.js'
import { parseJsonKeepingInt64, stringifyJsonWithInt64 } from '../json-int64.js'
import { nsToIso8601 } from '../ns-time.js'
import { formatExactDecimal, isExactDecimal } from './exact-decimal.js'
import type { TransformNode, TransformValue } from './transform.js'
import { evaluateTransform, parseTransform, transformType } from './transform.js'
import type { RecordedMessage } from './recorder-source.js'

/**
 * The type of an output column. `decimal` values are exact decimal strings; `timestamp` values
 * are bigint counts of `unit` since the epoch (UTC).
 */
export type CellType = 'i64' | 'f64' | 'decimal' | 'string' | 'bool' | 'timestamp'
export type Cell = bigint | number | string | boolean | null

export type TimestampUnit = 'NANOS' | 'MICROS' | 'MILLIS'

export interface OutputColumn {
  readonly name: string
  readonly type: CellType
  /** `decimal`: the digits after the point (N of `decimal(N)`). */
  readonly scale?: number
  /** `timestamp`: what one unit of the value is. */
  readonly unit?: TimestampUnit
}

/** The most digits a decimal cell has: Parquet's DECIMAL(38, N) in 16 bytes holds them all. */
export const DECIMAL_PRECISION = 38

/** A schema made ready for one exchange: columns with their types, and a message-to-rows step. */
export interface CompiledSchema {
  readonly columns: readonly OutputColumn[]
  rows(message: RecordedMessage): Cell[][]
}

type Extract = (element: unknown, root: unknown, collectedNs: bigint) => Cell

/** Follows a dot path; numeric segments index arrays. `$.` starts at the message root. */
function lookup(element: unknown, root: unknown, path: string): unknown {
  let at = path.startsWith('$.') ? root : element
  for (const segment of (path.startsWith('$.') ? path.slice(2) : path).split('.')) {
    if (Array.isArray(at) && /^\d+$/.test(segment)) at = at[Number(segment)]
    else if (typeof at === 'object' && at !== null && !Array.isArray(at))
      at = Object.hasOwn(at, segment) ? (at as Record<string, unknown>)[segment] : undefined
    else return undefined
  }
  return at
}

/**
 * Rounds a decimal string half away from zero to `scale` places; trailing zeros trimmed. Null
 * when it is no decimal, or when it has more than {@link DECIMAL_PRECISION} digits at that
 * scale (it would not fit the column's DECIMAL(38, N)).
 */
export function roundDecimal(text: string, scale: number): string | null {
  const match = /^([-+]?)(\d+)(?:\.(\d+))?$/.exec(text.trim())
  if (match === null) return null
  const [, sign = '', whole = '0', fraction = ''] = match
  let digits = BigInt(whole + fraction.padEnd(scale, '0').slice(0, scale))
  if ((fraction[scale] ?? '0') >= '5') digits += 1n
  if (digits.toString().length > DECIMAL_PRECISION) return null
  const padded = digits.toString().padStart(scale + 1, '0')
  const intPart = scale === 0 ? padded : padded.slice(0, -scale)
  const fracPart = scale === 0 ? '' : padded.slice(-scale).replace(/0+$/, '')
  const body = fracPart === '' ? intPart : `${intPart}.${fracPart}`
  return sign === '-' && /[1-9]/.test(body) ? `-${body}` : body
}

function numberToDecimalText(value: number): string {
  const text = String(value)
  if (!/e/i.test(text)) return text
  return value.toFixed(Math.abs(value) < 1 ? 20 : 0)
}

/** A value extracted from a message, converted to the column's declared type; else null. */
function coerce(value: unknown, type: ColumnType): Cell {
  if (value === undefined || value === null) return null
  switch (type.kind) {
    case 'decimal':
      if (typeof value === 'number' && Number.isFinite(value))
        return roundDecimal(numberToDecimalText(value), type.scale)
      if (typeof value === 'bigint') return roundDecimal(value.toString(), type.scale)
      return typeof value === 'string' ? roundDecimal(value, type.scale) : null
    case 'f64': {
      if (typeof value === 'number') return value
      if (typeof value === 'bigint') return Number(value)
      if (typeof value !== 'string' || value.trim() === '') return null
      const parsed = Number(value)
      return Number.isNaN(parsed) ? null : parsed
    }
    case 'i64':
      if (typeof value === 'bigint') return value
      if (typeof value === 'number') return Number.isInteger(value) ? BigInt(value) : null
      return typeof value === 'string' && /^-?\d{1,19}$/.test(value.trim())
        ? BigInt(value.trim())
        : null
    case 'string':
      if (typeof value === 'string') return value
      if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
        return String(value)
      return stringifyJsonWithInt64(value)
    case 'bool':
      if (typeof value === 'boolean') return value
      if (value === 'true' || value === 1) return true
      if (value === 'false' || value === 0) return false
      return null
  }
}

/** The output column of a value of `type`. */
function outputColumn(name: string, type: ColumnType): OutputColumn {
  return type.kind === 'decimal'
    ? { name, type: 'decimal', scale: type.scale }
    : { name, type: type.kind }
}

function toTransformValue(cell: Cell): TransformValue {
  return typeof cell === 'bigint' ? Number(cell) : cell
}

/** What a transform produced, as a value `coerce` takes: an exact decimal as its text. */
function fromTransform(value: TransformValue): unknown {
  return isExactDecimal(value) ? formatExactDecimal(value) : value
}

const META_UNITS: Readonly<Partial<Record<MetaFormat, TimestampUnit>>> = {
  ns: 'NANOS',
  us: 'MICROS',
  ms: 'MILLIS',
}

/** A meta column: ns, us and ms are timestamps; s an integer (Parquet has no unit of seconds). */
function metaColumn(name: string, format: MetaFormat): OutputColumn {
  const unit = META_UNITS[format]
  if (unit !== undefined) return { name, type: 'timestamp', unit }
  return { name, type: format === 'iso8601' ? 'string' : 'i64' }
}

function metaCell(ns: bigint, format: MetaFormat): Cell {
  switch (format) {
    case 'ns':
      return ns
    case 'us':
      return ns / 1_000n
    case 'ms':
      return ns / 1_000_000n
    case 's':
      return ns / 1_000_000_000n
    case 'iso8601':
      return nsToIso8601(ns)
  }
}

/**
 * A column with a transform. Over a `decimal(N)` value the arithmetic is exact and a numeric
 * result is a `decimal(N)` column again (rounded half away from zero to N places); over other
 * values it is f64.
 */
function compileTransform(
  name: string,
  type: ColumnType,
  transform: TransformNode,
): { column: OutputColumn; apply: (cell: Cell) => Cell } {
  const result = transformType(transform)
  const mode = type.kind === 'decimal' ? 'decimal' : 'float'
  const run = (cell: Cell) =>
    fromTransform(evaluateTransform(transform, toTransformValue(cell), mode))
  switch (result) {
    case 'input':
      return { column: outputColumn(name, type), apply: (cell) => coerce(run(cell), type) }
    case 'number': {
      const numeric: ColumnType = type.kind === 'decimal' ? type : { kind: 'f64' }
      return { column: outputColumn(name, numeric), apply: (cell) => coerce(run(cell), numeric) }
    }
    case 'bool':
      return {
        column: { name, type: 'bool' },
        apply: (cell) => coerce(run(cell), { kind: 'bool' }),
      }
    case 'string':
      return {
        column: { name, type: 'string' },
        apply: (cell) => coerce(run(cell), { kind: 'string' }),
      }
  }
}

function derive(root: unknown, rules: readonly DeriveRule[]): unknown {
  if (typeof root !== 'object' || root === null || Array.isArray(root)) return root
  const out: Record<string, unknown> = { ...(root as Record<string, unknown>) }
  for (const rule of rules) {
    out[rule.field] = rule.concat.flatMap((part) => {
      const found = lookup(out, out, part.path)
      return Array.isArray(found)
        ? found.map((value: unknown, index) => ({ tag: part.tag, index, value }))
        : []
    })
  }
  return out
}

/**
 * Compiles an export's schema snapshot for the datastream's exchange. `raw` gives the
 * collection timestamp and the message text as received; a column without a rule for the
 * exchange is all nulls.
 */
export function compileSchema(snapshot: SchemaSnapshot, exchange: string): CompiledSchema {
  const definition = snapshot.definition
  if (definition === undefined) {
    return {
      columns: [
        { name: 'collection_timestamp_ns', type: 'timestamp', unit: 'NANOS' },
        { name: 'message', type: 'string' },
      ],
      rows: (message) => [[message.collectionTimestampNs, message.raw]],
    }
  }
  const columns: OutputColumn[] = []
  const extracts: Extract[] = []
  for (const column of definition.columns) {
    if ('meta' in column) {
      const format = column.meta.format
      columns.push(metaColumn(column.output_column, format))
      extracts.push((_element, _root, ns) => metaCell(ns, format))
      continue
    }
    const rule = column.data[exchange]
    if (rule === undefined) {
      columns.push({ name: column.output_column, type: 'string' })
      extracts.push(() => null)
      continue
    }
    const type = parseColumnType(rule.json.type) ?? { kind: 'string' }
    const path = rule.json.path
    if (rule.transform === undefined) {
      columns.push(outputColumn(column.output_column, type))
      extracts.push((element, root) => coerce(lookup(element, root, path), type))
    } else {
      const compiled = compileTransform(column.output_column, type, parseTransform(rule.transform))
      columns.push(compiled.column)
      extracts.push((element, root) => compiled.apply(coerce(lookup(element, root, path), type)))
    }
  }
  const deriveRules = definition.derive?.[exchange] ?? []
  const unfoldPath = definition.unfold?.[exchange]?.path
  return {
    columns,
    rows(message) {
      const root = derive(parseJsonKeepingInt64(message.raw), deriveRules)
      const elements = unfoldPath === undefined ? [root] : lookup(root, root, unfoldPath)
      if (!Array.isArray(elements)) return []
      return elements.map((element: unknown) =>
        extracts.map((extract) => extract(element, root, message.collectionTimestampNs)),
      )
    },
  }
}
