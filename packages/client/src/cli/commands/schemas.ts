import { readFile } from 'node:fs/promises'
import type { CreateSchemaParams, ExportSchema, SchemaDraftParams } from '../../types.js'
import type { Command } from '../command.js'
import { formatDetails, formatTable } from '../format-table.js'
import { optionalString, requiredString } from '../option-values.js'
import { withLocalFiles } from '../file-errors.js'
import { UsageError } from '../usage-error.js'

function details(schema: ExportSchema): string {
  return formatDetails([
    ['ID', schema.id],
    ['Name', schema.name],
    ['Stream category', schema.stream_category],
    ['Built in', schema.is_built_in ? 'yes' : 'no'],
    ['Version', String(schema.version)],
    ['Has draft', schema.has_draft ? 'yes' : 'no'],
    ['Columns', schema.columns.map((column) => column.output_column).join(', ')],
  ])
}

/** Reads a JSON body from a file, or from stdin for `-`. The server validates its fields. */
async function readJsonFile(path: string): Promise<unknown> {
  const text =
    path === '-'
      ? await readStdin()
      : await withLocalFiles(`cannot read ${path}`, () => readFile(path, 'utf8'))
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new UsageError(`${path} is not valid JSON: ${(error as Error).message}`)
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

const file = (description: string) =>
  ({ type: 'string', placeholder: 'FILE', description }) as const

export const schemaCommands: Readonly<Record<string, Command>> = {
  list: {
    summary: 'List export schemas, built-ins first',
    async run({ client, call, print }) {
      const schemas = await client.exportSchemas.list(call)
      print(schemas, () =>
        formatTable(schemas, [
          { header: 'ID', value: (row) => row.id },
          { header: 'NAME', value: (row) => row.name },
          { header: 'CATEGORY', value: (row) => row.stream_category },
          { header: 'VERSION', value: (row) => String(row.version) },
          { header: 'BUILT IN', value: (row) => (row.is_built_in ? 'yes' : 'no') },
          { header: 'DRAFT', value: (row) => (row.has_draft ? 'yes' : 'no') },
        ]),
      )
      return undefined
    },
  },
  get: {
    summary: 'Show the published version of a schema',
    positionals: ['ID'],
    async run({ client, positionals, call, print }) {
      const schema = await client.exportSchemas.get(positionals[0] ?? '', call)
      print(schema, () => details(schema))
      return undefined
    },
  },
  create: {
    summary: 'Create a schema from a JSON file {name, stream_category, columns, ...}',
    options: { file: file('the schema as JSON, - for stdin (required)') },
    mutation: true,
    async run({ client, options, mutation, print }) {
      const body = (await readJsonFile(requiredString(options, 'file'))) as CreateSchemaParams
      const schema = await client.exportSchemas.create(body, mutation)
      print(schema, () => details(schema))
      return undefined
    },
  },
  draft: {
    summary: 'Start a draft: from a JSON file {columns, ...}, else a copy of the published version',
    positionals: ['ID'],
    options: { file: file('the draft as JSON, - for stdin') },
    mutation: true,
    async run({ client, positionals, options, mutation, print }) {
      const path = optionalString(options, 'file')
      const body =
        path === undefined ? undefined : ((await readJsonFile(path)) as SchemaDraftParams)
      const draft = await client.exportSchemas.createDraft(positionals[0] ?? '', body, mutation)
      print(
        draft,
        () => `Draft of ${positionals[0] ?? ''} with ${String(draft.columns.length)} columns`,
      )
      return undefined
    },
  },
  publish: {
    summary: 'Publish the draft as the next version',
    positionals: ['ID'],
    mutation: true,
    async run({ client, positionals, mutation, print }) {
      const schema = await client.exportSchemas.publish(positionals[0] ?? '', mutation)
      print(schema, () => details(schema))
      return undefined
    },
  },
  delete: {
    summary: 'Delete a schema (exports keep their snapshot)',
    positionals: ['ID'],
    mutation: true,
    async run({ client, positionals, mutation, print }) {
      const [id = ''] = positionals
      await client.exportSchemas.delete(id, mutation)
      print({ id, result: 'deleted' }, () => `Deleted ${id}`)
      return undefined
    },
  },
}
