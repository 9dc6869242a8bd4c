import { ApiError } from '../api-error.js'
import { SEED_EXCHANGES, STREAM_TYPES, parseStreamType } from '../catalog-seed.js'
import type { StreamType } from '../catalog-seed.js'
import { parseTransform } from './transform.js'

export const MAX_COLUMNS = 100
export const META_FORMATS = ['ns', 'us', 'ms', 's', 'iso8601'] as const
export type MetaFormat = (typeof META_FORMATS)[number]

export interface MetaColumn {
  readonly output_column: string
  readonly meta: { readonly value: 'collection_timestamp_ns'; readonly format: MetaFormat }
}

export interface DataRule {
  readonly json: { readonly path: string; readonly type: string }
  readonly transform?: string
}

export interface DataColumn {
  readonly output_column: string
  readonly data: Readonly<Record<string, DataRule>>
}

export type SchemaColumn = MetaColumn | DataColumn

/**
 * A derived field, computed from the message before `unfold` and column extraction: `field`
 * becomes an array of `{"tag","index","value"}`, one per element of each array in `concat`,
 * e.g. bids and asks merged into one list of tagged levels that `unfold` turns into rows.
 */
export interface DeriveRule {
  readonly field: string
  readonly concat: readonly { readonly path: string; readonly tag: string }[]
}

/** What a schema version holds: the body of create, draft and publish. */
export interface SchemaDefinition {
  readonly columns: readonly SchemaColumn[]
  readonly unfold?: Readonly<Record<string, { readonly path: string }>>
  readonly derive?: Readonly<Record<string, readonly DeriveRule[]>>
}

/** The column types of `data.json.type`. */
export type ColumnType =
  | { readonly kind: 'decimal'; readonly scale: number }
  | { readonly kind: 'f64' | 'i64' | 'string' | 'bool' }

const EXCHANGES = new Set(SEED_EXCHANGES.map((exchange) => exchange.code))
export const OUTPUT_COLUMN = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/
export const PATH = /^(\$\.)?[A-Za-z0-9_$-]{1,64}(\.[A-Za-z0-9_$-]{1,64}){0,15}$/
export const FIELD = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/
export const SCHEMA_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/

function invalid(message: string, details?: Record<string, unknown>): ApiError {
  return new ApiError('invalid_argument', message, details)
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function onlyKeys(value: Record<string, unknown>, where: string, allowed: readonly string[]): void {
  for (const key of Object.keys(value))
    if (!allowed.includes(key))
      throw invalid(`${where}: unknown field "${key}" (allowed: ${allowed.join(', ')})`)
}

function requireObject(value: unknown, where: string): Record<string, unknown> {
  if (!isObject(value)) throw invalid(`${where} must be an object`)
  return value
}

function requireString(value: unknown, where: string, pattern: RegExp, hint: string): string {
  if (typeof value !== 'string' || !pattern.test(value)) throw invalid(`${where} must be ${hint}`)
  return value
}

function exchangeKey(key: string, where: string): void {
  if (!EXCHANGES.has(key))
    throw invalid(`${where}: unknown exchange "${key}" (known: ${[...EXCHANGES].join(', ')})`)
}

const PATH_HINT = 'a dot path such as "p" or "data.b.0.0" ("$." first to start at the message root)'

/** `decimal(N)` (N places, 0 to 38), `f64`, `i64`, `string` or `bool`. */
export function parseColumnType(type: string): ColumnType | undefined {
  const decimal = /^decimal\((\d{1,2})\)$/.exec(type)
  if (decimal !== null) {
    const scale = Number(decimal[1])
    return scale <= 38 ? { kind: 'decimal', scale } : undefined
  }
  if (type === 'f64' || type === 'i64' || type === 'string' || type === 'bool')
    return { kind: type }
  return undefined
}

function parseColumn(value: unknown, where: string): SchemaColumn {
  const column = requireObject(value, where)
  onlyKeys(column, where, ['output_column', 'meta', 'data'])
  const name = requireString(
    column['output_column'],
    `${where}.output_column`,
    OUTPUT_COLUMN,
    'a name of letters, digits and _ (at most 128, not starting with a digit)',
  )
  const hasMeta = column['meta'] !== undefined
  const hasData = column['data'] !== undefined
  if (hasMeta === hasData) throw invalid(`${where} must have exactly one of meta or data`)
  if (hasMeta) {
    const meta = requireObject(column['meta'], `${where}.meta`)
    onlyKeys(meta, `${where}.meta`, ['value', 'format'])
    if (meta['value'] !== 'collection_timestamp_ns')
      throw invalid(`${where}.meta.value must be "collection_timestamp_ns"`)
    const format = meta['format'] ?? 'ns'
    if (!META_FORMATS.includes(format as MetaFormat))
      throw invalid(`${where}.meta.format must be one of ${META_FORMATS.join(', ')}`)
    return {
      output_column: name,
      meta: { value: 'collection_timestamp_ns', format: format as MetaFormat },
    }
  }
  const data = requireObject(column['data'], `${where}.data`)
  if (Object.keys(data).length === 0)
    throw invalid(`${where}.data needs a rule for at least one exchange`)
  const rules: Record<string, DataRule> = {}
  for (const [exchange, ruleValue] of Object.entries(data)) {
    const at = `${where}.data.${exchange}`
    exchangeKey(exchange, `${where}.data`)
    const rule = requireObject(ruleValue, at)
    onlyKeys(rule, at, ['json', 'transform'])
    const json = requireObject(rule['json'], `${at}.json`)
    onlyKeys(json, `${at}.json`, ['path', 'type'])
    const path = requireString(json['path'], `${at}.json.path`, PATH, PATH_HINT)
    const type = json['type']
    if (typeof type !== 'string' || parseColumnType(type) === undefined)
      throw invalid(
        `${at}.json.type must be one of decimal(N) with N from 0 to 38, f64, i64, string, bool`,
      )
    const transform = rule['transform']
    if (transform !== undefined && transform !== null) {
      if (typeof transform !== 'string') throw invalid(`${at}.transform must be a string`)
      parseTransform(transform)
      rules[exchange] = { json: { path, type }, transform }
    } else rules[exchange] = { json: { path, type } }
  }
  return { output_column: name, data: rules }
}

function parseUnfold(value: unknown): SchemaDefinition['unfold'] {
  const unfold = requireObject(value, 'unfold')
  const out: Record<string, { path: string }> = {}
  for (const [exchange, ruleValue] of Object.entries(unfold)) {
    exchangeKey(exchange, 'unfold')
    const rule = requireObject(ruleValue, `unfold.${exchange}`)
    onlyKeys(rule, `unfold.${exchange}`, ['path'])
    out[exchange] = {
      path: requireString(rule['path'], `unfold.${exchange}.path`, PATH, PATH_HINT),
    }
  }
  return out
}

function parseDerive(value: unknown): SchemaDefinition['derive'] {
  const derive = requireObject(value, 'derive')
  const out: Record<string, DeriveRule[]> = {}
  for (const [exchange, rulesValue] of Object.entries(derive)) {
    exchangeKey(exchange, 'derive')
    if (!Array.isArray(rulesValue) || rulesValue.length > 8)
      throw invalid(`derive.${exchange} must be an array of at most 8 rules`)
    out[exchange] = rulesValue.map((ruleValue: unknown, index) => {
      const at = `derive.${exchange}[${String(index)}]`
      const rule = requireObject(ruleValue, at)
      onlyKeys(rule, at, ['field', 'concat'])
      const field = requireString(
        rule['field'],
        `${at}.field`,
        FIELD,
        'a name of letters, digits and _',
      )
      const concat = rule['concat']
      if (!Array.isArray(concat) || concat.length === 0 || concat.length > 8)
        throw invalid(`${at}.concat must be an array of 1 to 8 {"path","tag"} objects`)
      return {
        field,
        concat: concat.map((partValue: unknown, partIndex) => {
          const partAt = `${at}.concat[${String(partIndex)}]`
          const part = requireObject(partValue, partAt)
          onlyKeys(part, partAt, ['path', 'tag'])
          const tag = part['tag']
          if (typeof tag !== 'string' || tag.length > 64)
            throw invalid(`${partAt}.tag must be a string of at most 64 characters`)
          return { path: requireString(part['path'], `${partAt}.path`, PATH, PATH_HINT), tag }
        }),
      }
    })
  }
  return out
}

/**
 * Validates `columns`, `unfold` and `derive` of a body (create, draft, inline export schema)
 * into their canonical form; `null` or a missing `unfold`/`derive` clears it.
 */
export function parseSchemaDefinition(body: Record<string, unknown>): SchemaDefinition {
  const columns = body['columns']
  if (!Array.isArray(columns)) throw invalid('columns must be an array of 1 to 100 columns')
  if (columns.length > MAX_COLUMNS)
    throw invalid('Schema has too many columns', {
      max_columns: MAX_COLUMNS,
      provided: columns.length,
    })
  if (columns.length === 0) throw invalid('A schema needs at least 1 column')
  const parsed = columns.map((column: unknown, index) =>
    parseColumn(column, `columns[${String(index)}]`),
  )
  const seen = new Set<string>()
  for (const column of parsed) {
    if (seen.has(column.output_column))
      throw invalid(`output_column "${column.output_column}" appears more than once`)
    seen.add(column.output_column)
  }
  const unfold =
    body['unfold'] === undefined || body['unfold'] === null
      ? undefined
      : parseUnfold(body['unfold'])
  const derive =
    body['derive'] === undefined || body['derive'] === null
      ? undefined
      : parseDerive(body['derive'])
  return {
    columns: parsed,
    ...(unfold === undefined ? {} : { unfold }),
    ...(derive === undefined ? {} : { derive }),
  }
}

/** A draft body (POST or PUT draft; an inline export schema): `columns`, `unfold`?, `derive`?. */
export function parseDraftBody(body: unknown): SchemaDefinition {
  const object = requireObject(body, 'The body')
  onlyKeys(object, 'The body', ['columns', 'unfold', 'derive'])
  return parseSchemaDefinition(object)
}

export interface CreateSchemaBody {
  readonly name: string
  readonly streamCategory: StreamType
  readonly definition: SchemaDefinition
}

export function parseCreateSchemaBody(body: unknown): CreateSchemaBody {
  const object = requireObject(body, 'The body')
  onlyKeys(object, 'The body', ['name', 'stream_category', 'columns', 'unfold', 'derive'])
  const name = requireString(
    object['name'],
    'name',
    SCHEMA_NAME,
    'a name of 1 to 100 letters, digits, _ . - starting with a letter or digit',
  )
  const category = parseStreamType(object['stream_category'])
  if (category === undefined)
    throw invalid(`stream_category must be one of ${STREAM_TYPES.join(', ')}`)
  return { name, streamCategory: category, definition: parseSchemaDefinition(object) }
}

/**
 * The body of `PUT /v1/export-schemas/{id}`: a new published version's `columns`, `unfold`?,
 * `derive`? (omitted or `null` clears them). `name` and `stream_category` may be sent back as
 * they are (a client that PUTs the resource it read); whether they still match is checked
 * against the stored schema.
 */
export interface ReplaceSchemaBody {
  readonly name: string | undefined
  readonly streamCategory: StreamType | undefined
  readonly definition: SchemaDefinition
}

export function parseReplaceSchemaBody(body: unknown): ReplaceSchemaBody {
  const object = requireObject(body, 'The body')
  onlyKeys(object, 'The body', ['name', 'stream_category', 'columns', 'unfold', 'derive'])
  const name = object['name']
  if (name !== undefined && typeof name !== 'string') throw invalid('name must be a string')
  const given = object['stream_category']
  const category = given === undefined ? undefined : parseStreamType(given)
  if (given !== undefined && category === undefined)
    throw invalid(`stream_category must be one of ${STREAM_TYPES.join(', ')}`)
  return {
    name,
    streamCategory: category,
    definition: parseSchemaDefinition(object),
  }
}
