import type { Queryable } from '../../db/database.js'
import type { Account } from '../accounts.js'
import { ApiError } from '../api-error.js'
import type { StreamType } from '../catalog-seed.js'
import type { BuiltInSchema } from './schema-builtins.js'
import {
  BUILT_IN_CREATED_AT_MS,
  BUILT_IN_SCHEMAS,
  findBuiltInById,
  findBuiltInByName,
} from './schema-builtins.js'
import type { CreateSchemaBody, ReplaceSchemaBody, SchemaDefinition } from './schema-definition.js'
import { isId, newId } from '../ids.js'
import { toRfc3339 } from '../time.js'

/** An export schema as the API shows it (its published version, or its draft). */
export interface ExportSchema extends SchemaDefinition {
  readonly id: string
  readonly name: string
  readonly stream_category: StreamType
  readonly is_built_in: boolean
  readonly created_at: string
  readonly version: number
  readonly has_draft: boolean
}

interface SchemaRow {
  id: string
  name: string
  stream_category: StreamType
  created_at: number | string
  version: number | string
  draft: string | null
  definition: string
}

const SELECT_SCHEMA = `
  SELECT s.id, s.name, s.stream_category, s.created_at, s.version, s.draft, v.definition
    FROM export_schemas s
    JOIN export_schema_versions v ON v.schema_id = s.id AND v.version = s.version`

function show(row: SchemaRow, definition: SchemaDefinition): ExportSchema {
  return {
    id: row.id,
    name: row.name,
    stream_category: row.stream_category,
    is_built_in: false,
    created_at: toRfc3339(Number(row.created_at)),
    version: Number(row.version),
    has_draft: row.draft !== null,
    ...definition,
  }
}

function showBuiltIn(schema: BuiltInSchema): ExportSchema {
  return {
    id: schema.id,
    name: schema.name,
    stream_category: schema.streamCategory,
    is_built_in: true,
    created_at: toRfc3339(BUILT_IN_CREATED_AT_MS),
    version: 1,
    has_draft: false,
    ...schema.definition,
  }
}

const parse = (text: string) => JSON.parse(text) as SchemaDefinition

function notFound(id: string): ApiError {
  return new ApiError('not_found', `Export schema ${id} not found`)
}

/** The account's own schema; a built-in, another account's or a malformed id is a 404. */
async function findOwn(db: Queryable, account: Account, id: string): Promise<SchemaRow> {
  if (findBuiltInById(id) !== undefined)
    throw new ApiError('not_found', `Export schema ${id} is built in and cannot be changed`)
  const row = isId('sch', id)
    ? await db.get<SchemaRow>(`${SELECT_SCHEMA} WHERE s.id = ? AND s.account_id = ?`, [
        id,
        account.id,
      ])
    : undefined
  if (row === undefined) throw notFound(id)
  return row
}

export async function createSchema(
  db: Queryable,
  account: Account,
  body: CreateSchemaBody,
  now: number,
): Promise<ExportSchema> {
  const conflict = () =>
    new ApiError(
      'already_exists',
      `Export schema "${body.name}" already exists for stream category ${body.streamCategory}`,
    )
  if (body.name === 'raw' || findBuiltInByName(body.name, body.streamCategory) !== undefined)
    throw conflict()
  const id = newId('sch', now)
  // The unique (account, category, name) constraint decides a race between two creates.
  const inserted = await db.run(
    `INSERT INTO export_schemas (id, account_id, name, stream_category, created_at, version)
     VALUES (?, ?, ?, ?, ?, 1)
     ON CONFLICT (account_id, stream_category, name) DO NOTHING`,
    [id, account.id, body.name, body.streamCategory, now],
  )
  if (inserted === 0) throw conflict()
  const definition = JSON.stringify(body.definition)
  await db.run(
    'INSERT INTO export_schema_versions (schema_id, version, definition, published_at) VALUES (?, 1, ?, ?)',
    [id, definition, now],
  )
  return show(
    {
      id,
      name: body.name,
      stream_category: body.streamCategory,
      created_at: now,
      version: 1,
      draft: null,
      definition,
    },
    body.definition,
  )
}

/** Built-ins first (never `raw`), then the account's, oldest first. */
export async function listSchemas(db: Queryable, account: Account): Promise<ExportSchema[]> {
  const rows = await db.all<SchemaRow>(
    `${SELECT_SCHEMA} WHERE s.account_id = ? ORDER BY s.created_at, s.id`,
    [account.id],
  )
  return [
    ...BUILT_IN_SCHEMAS.map(showBuiltIn),
    ...rows.map((row) => show(row, parse(row.definition))),
  ]
}

export async function getSchema(
  db: Queryable,
  account: Account,
  id: string,
): Promise<ExportSchema> {
  const builtIn = findBuiltInById(id)
  if (builtIn !== undefined) return showBuiltIn(builtIn)
  const row = await findOwn(db, account, id)
  return show(row, parse(row.definition))
}

/** Deletes the schema and its versions; exports made from it keep their snapshot. */
export async function deleteSchema(db: Queryable, account: Account, id: string): Promise<void> {
  await findOwn(db, account, id)
  // The schema's row first: a publish or an update moves `version` on it before it inserts
  // the version, so once this transaction holds the row no version can be added, and the
  // versions deleted next are all of them. Deleting the versions first let one committed in
  // between (PostgreSQL, read committed) break the foreign key: a 500. A delete that loses
  // the race to another finds no row: 404, as it would a moment later.
  const held = await db.run('UPDATE export_schemas SET version = version WHERE id = ?', [id])
  if (held === 0) throw notFound(id)
  await db.run('DELETE FROM export_schema_versions WHERE schema_id = ?', [id])
  await db.run('DELETE FROM export_schemas WHERE id = ?', [id])
}

/** Creates or replaces the draft: a copy of the published version, or `definition`. */
export async function createDraft(
  db: Queryable,
  account: Account,
  id: string,
  definition: SchemaDefinition | undefined,
): Promise<ExportSchema> {
  const row = await findOwn(db, account, id)
  const draft = definition ?? parse(row.definition)
  await db.run('UPDATE export_schemas SET draft = ? WHERE id = ?', [JSON.stringify(draft), id])
  return show({ ...row, draft: '' }, draft)
}

async function findDraft(
  db: Queryable,
  account: Account,
  id: string,
): Promise<{ row: SchemaRow; draft: string }> {
  const row = await findOwn(db, account, id)
  if (row.draft === null) throw new ApiError('not_found', `Export schema ${id} has no draft`)
  return { row, draft: row.draft }
}

export async function getDraft(db: Queryable, account: Account, id: string): Promise<ExportSchema> {
  const { row, draft } = await findDraft(db, account, id)
  return show(row, parse(draft))
}

export async function updateDraft(
  db: Queryable,
  account: Account,
  id: string,
  definition: SchemaDefinition,
): Promise<ExportSchema> {
  const { row } = await findDraft(db, account, id)
  await db.run('UPDATE export_schemas SET draft = ? WHERE id = ?', [JSON.stringify(definition), id])
  return show(row, definition)
}

export async function deleteDraft(db: Queryable, account: Account, id: string): Promise<void> {
  await findDraft(db, account, id)
  await db.run('UPDATE export_schemas SET draft = NULL WHERE id = ?', [id])
}

/** The draft becomes version + 1; the draft is gone. */
export async function publishDraft(
  db: Queryable,
  account: Account,
  id: string,
  now: number,
): Promise<ExportSchema> {
  const { row, draft } = await findDraft(db, account, id)
  const version = Number(row.version) + 1
  // Conditional on the version read: of two concurrent publishes only one moves it.
  const moved = await db.run(
    'UPDATE export_schemas SET version = ?, draft = NULL WHERE id = ? AND version = ? AND draft IS NOT NULL',
    [version, id, Number(row.version)],
  )
  if (moved === 0) throw new ApiError('not_found', `Export schema ${id} has no draft`)
  await db.run(
    'INSERT INTO export_schema_versions (schema_id, version, definition, published_at) VALUES (?, ?, ?, ?)',
    [id, version, draft, now],
  )
  return show({ ...row, version, draft: null }, parse(draft))
}

/**
 * The atomic update: `body` becomes the published version + 1 in one step, without a draft.
 * An existing draft stays as it is (it is the account's work in progress, and publishing it
 * later makes yet another version). `name` and `stream_category` never change: sent back
 * unchanged they are fine, another value is a 400.
 */
export async function replaceSchema(
  db: Queryable,
  account: Account,
  id: string,
  body: ReplaceSchemaBody,
  now: number,
): Promise<ExportSchema> {
  for (;;) {
    const row = await findOwn(db, account, id)
    if (body.name !== undefined && body.name !== row.name)
      throw new ApiError(
        'invalid_argument',
        `name cannot change (export schema ${id} is named "${row.name}")`,
      )
    if (body.streamCategory !== undefined && body.streamCategory !== row.stream_category)
      throw new ApiError(
        'invalid_argument',
        `stream_category cannot change (export schema ${id} is for ${row.stream_category})`,
      )
    const version = Number(row.version) + 1
    // Conditional on the version read, like publish: of two concurrent updates each gets its
    // own version, the later one on top (a PUT replaces; the last one wins).
    const moved = await db.run(
      'UPDATE export_schemas SET version = ? WHERE id = ? AND version = ?',
      [version, id, Number(row.version)],
    )
    if (moved === 0) continue
    const definition = JSON.stringify(body.definition)
    await db.run(
      'INSERT INTO export_schema_versions (schema_id, version, definition, published_at) VALUES (?, ?, ?, ?)',
      [id, version, definition, now],
    )
    return show({ ...row, version, definition }, body.definition)
  }
}

/** What an export keeps of its schema: the published version at the export's creation. */
export interface SchemaSnapshot {
  /** `raw`, a built-in's name, a stored schema's id, or `inline`. */
  readonly source: string
  readonly version: number
  /** Undefined for `raw`: the collection timestamp and the message as received. */
  readonly definition?: SchemaDefinition
}

/**
 * Resolves an export's `schema` against the datastream's stream category: `raw`, a built-in
 * name, a schema id of the account, or an inline definition.
 */
export async function snapshotSchema(
  db: Queryable,
  account: Account,
  schema: string | SchemaDefinition,
  category: StreamType,
): Promise<SchemaSnapshot> {
  if (typeof schema !== 'string') return { source: 'inline', version: 1, definition: schema }
  if (schema === 'raw') return { source: 'raw', version: 1 }
  if (!schema.startsWith('sch_')) {
    const builtIn = findBuiltInByName(schema, category)
    if (builtIn === undefined)
      throw new ApiError(
        'invalid_argument',
        `Schema ${schema} has no variant for stream category ${category}`,
      )
    return { source: builtIn.name, version: 1, definition: builtIn.definition }
  }
  const builtIn = findBuiltInById(schema)
  const found = builtIn === undefined ? await getSchema(db, account, schema) : showBuiltIn(builtIn)
  if (found.stream_category !== category)
    throw new ApiError(
      'invalid_argument',
      `Export schema ${schema} is for stream category ${found.stream_category}, but the datastream is ${category}`,
    )
  const { columns, unfold, derive } = found
  return {
    source: found.id,
    version: found.version,
    definition: {
      columns,
      ...(unfold === undefined ? {} : { unfold }),
      ...(derive === undefined ? {} : { derive }),
    },
  }
}
