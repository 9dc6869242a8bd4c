/**
 * The client's wire types cannot drift from the server's: this test reads the OpenAPI document
 * the server serves, turns its schemas into TypeScript types, and has the compiler check that
 * each of the client's types is the same type, both ways assignable. The client still imports
 * nothing of the server's: the document comes over HTTP, as any generator would get it.
 *
 * Two differences are by design: an export job's `start_time` and `end_time` are int64 JSON
 * integers on the wire and decimal strings in the client, which `parseExportJson` converts
 * (docs/decisions/0102); and an int64 the client sends may be a `bigint`, which it writes digit
 * for digit. The generated types say so where the client converts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLIENT_ROOT } from './support/repo-root.js'
import type { RunningServer } from './support/server-process.js'
import { startServer } from './support/server-process.js'

type Schema = Record<string, unknown>
interface Document {
  paths: Record<string, Record<string, Operation>>
  components: { schemas: Record<string, Schema> }
}
interface Operation {
  parameters?: { in: string; name: string; schema: Schema }[]
  requestBody?: { content: Record<string, { schema: Schema }> }
  responses: Record<string, { content?: Record<string, { schema: Schema }> }>
}

/** Where the client holds int64 nanoseconds as strings (parseExportJson). */
const NANOSECOND_STRINGS = new Set(['ExportJob.start_time', 'ExportJob.end_time'])
/** Where the client takes an int64 it sends as a `bigint` too, written digit for digit. */
const INT64_SENT_AS_BIGINT = new Set([
  'CreateSubscription.datastream_id',
  'CreateExport.datastream_id',
  'CreateExport.start_time',
  'CreateExport.end_time',
])

/** JSON Schema (the subset the document uses) as a TypeScript type expression. */
function typeOf(schema: Schema, at: string): string {
  if (typeof schema['$ref'] === 'string') {
    return `Wire${schema['$ref'].replace('#/components/schemas/', '')}`
  }
  if (schema['const'] !== undefined) return JSON.stringify(schema['const'])
  if (Array.isArray(schema['enum'])) return schema['enum'].map((v) => JSON.stringify(v)).join(' | ')
  for (const key of ['oneOf', 'anyOf'] as const) {
    const alternatives = schema[key]
    if (Array.isArray(alternatives))
      return alternatives.map((s: Schema) => `(${typeOf(s, at)})`).join(' | ')
  }
  const types = Array.isArray(schema['type']) ? (schema['type'] as string[]) : [schema['type']]
  return types
    .map((type) => {
      switch (type) {
        case 'string':
          return 'string'
        case 'integer':
        case 'number':
          if (NANOSECOND_STRINGS.has(at)) return 'string'
          return INT64_SENT_AS_BIGINT.has(at) ? 'number | bigint' : 'number'
        case 'boolean':
          return 'boolean'
        case 'null':
          return 'null'
        case 'array':
          return `readonly (${typeOf((schema['items'] as Schema | undefined) ?? {}, at)})[]`
        case 'object':
          return objectType(schema, at)
        default:
          return 'unknown'
      }
    })
    .join(' | ')
}

function objectType(schema: Schema, at: string): string {
  const properties = (schema['properties'] as Record<string, Schema> | undefined) ?? {}
  const required = new Set((schema['required'] as string[] | undefined) ?? [])
  const extra = schema['additionalProperties']
  if (Object.keys(properties).length === 0 && typeof extra === 'object' && extra !== null) {
    const names = (schema['propertyNames'] as Schema | undefined)?.['enum']
    const key = Array.isArray(names) ? names.map((n) => JSON.stringify(n)).join(' | ') : 'string'
    return `Readonly<Partial<Record<${key}, ${typeOf(extra as Schema, at)}>>>`
  }
  const members = Object.entries(properties).map(
    ([name, property]) =>
      `readonly ${JSON.stringify(name)}${required.has(name) ? '' : '?'}: ${typeOf(property, `${at.split('.')[0] ?? at}.${name}`)}`,
  )
  return `{ ${members.join('; ')} }`
}

/** A request body or a 2xx answer's schema of `METHOD path`. */
/** `part` is `request` or a status such as `200`. */
function bodyOf(doc: Document, method: string, path: string, part: string): Schema {
  const operation = doc.paths[path]?.[method]
  const content =
    part === 'request' ? operation?.requestBody?.content : operation?.responses[part]?.content
  const schema = content?.['application/json']?.schema
  if (schema === undefined) throw new Error(`no ${part} body for ${method} ${path}`)
  return schema
}

/** Pairs of (the client's type, the wire type it must equal). */
function pairs(doc: Document): [client: string, wire: string][] {
  const page = (item: string) =>
    `{ readonly items: readonly ${item}[]; readonly total: number; readonly limit: number; readonly next_page_token: string | null }`
  return [
    ['Exchange', 'WireExchange'],
    ['Instrument', 'WireInstrument'],
    ['Datastream', 'WireDatastream'],
    ['Subscription', 'WireSubscription'],
    ['Span', 'WireSpan'],
    ['Availability', 'WireAvailability'],
    ['ExportJob', 'WireExportJob'],
    ['ExportDownload', 'WireExportDownload'],
    ['ExportSchema', 'WireExportSchema'],
    ['SchemaColumn', 'WireExportSchemaColumn'],
    ['BillingSummary', 'WireBillingSummary'],
    ['Page<Subscription>', page('WireSubscription')],
    ['Page<ExportJob>', page('WireExportJob')],
    [
      'CreateSubscriptionParams',
      typeOf(bodyOf(doc, 'post', '/v1/subscriptions', 'request'), 'CreateSubscription'),
    ],
    ['CreateExportParams', typeOf(bodyOf(doc, 'post', '/v1/exports', 'request'), 'CreateExport')],
    [
      'CreateSchemaParams',
      typeOf(bodyOf(doc, 'post', '/v1/export-schemas', 'request'), 'CreateSchema'),
    ],
    [
      'SchemaDraftParams',
      typeOf(bodyOf(doc, 'put', '/v1/export-schemas/{id}/draft', 'request'), 'Draft'),
    ],
    [
      'ReplaceSchemaParams',
      typeOf(bodyOf(doc, 'put', '/v1/export-schemas/{id}', 'request'), 'Replace'),
    ],
    [
      'NonNullable<DatastreamListParams["stream_type"]>',
      typeOf(
        doc.paths['/v1/datastreams']?.['get']?.parameters?.find((p) => p.name === 'stream_type')
          ?.schema ?? {},
        'DatastreamList',
      ),
    ],
  ]
}

/** A module that compiles only when every client type equals its wire type. */
function checkModule(doc: Document, extra = ''): string {
  const wire = Object.entries(doc.components.schemas).map(
    ([name, schema]) => `type Wire${name} = ${typeOf(schema, name)}`,
  )
  const checks = pairs(doc).map(
    ([client, wireType], index) =>
      `const check${String(index)}: Same<${client}, ${wireType}> = true // ${client}`,
  )
  const types = join(CLIENT_ROOT, 'src/types.js').replaceAll('\\', '/')
  return [
    `import type { Availability, BillingSummary, CreateExportParams, CreateSchemaParams, CreateSubscriptionParams, Datastream, DatastreamListParams, Exchange, ExportDownload, ExportJob, ExportSchema, Instrument, Page, ReplaceSchemaParams, SchemaColumn, SchemaDraftParams, Span, Subscription } from '${types}'`,
    '/** true when A and B are assignable both ways, else a type that names the two. */',
    'type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : { wire_is_not_the_client: B }) : { client_is_not_the_wire: A }',
    ...wire,
    extra,
    ...checks,
    `export const all = [${pairs(doc)
      .map((_, index) => `check${String(index)}`)
      .join(', ')}]`,
  ].join('\n')
}

function compile(source: string, directory: string): string[] {
  const file = join(directory, 'wire-check.ts')
  writeFileSync(file, source)
  const program = ts.createProgram([file], {
    strict: true,
    exactOptionalPropertyTypes: true,
    noEmit: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    skipLibCheck: true,
    types: [],
  })
  return ts
    .getPreEmitDiagnostics(program)
    .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'))
}

let server: RunningServer
let doc: Document
let scratch: string

beforeAll(async () => {
  server = await startServer({ accounts: ['wire'] })
  doc = (await (await fetch(`${server.baseUrl}/openapi.json`)).json()) as Document
  scratch = mkdtempSync(join(tmpdir(), 'ticksupply-wire-'))
})
afterAll(async () => {
  await server.stop()
  rmSync(scratch, { recursive: true, force: true })
})

describe("the client's wire types", () => {
  it('are the types of the OpenAPI document, both ways', () => {
    const diagnostics = compile(checkModule(doc), scratch)
    expect(diagnostics).toEqual([])
  })

  it('are checked by a comparison that does catch a drift', () => {
    // The server adds a required field to a subscription: the client's type no longer matches.
    const drifted = structuredClone(doc)
    const subscription = drifted.components.schemas['Subscription']!
    subscription['properties'] = {
      ...(subscription['properties'] as Schema),
      region: { type: 'string' },
    }
    subscription['required'] = [...(subscription['required'] as string[]), 'region']
    const diagnostics = compile(checkModule(drifted), scratch)
    // Subscription itself, and the page of them.
    expect(diagnostics).toHaveLength(2)
    for (const message of diagnostics) expect(message).toContain('client_is_not_the_wire')

    // The server drops a field the client reads: the wire type no longer has it.
    const dropped = structuredClone(doc)
    const span = dropped.components.schemas['Span']!
    const properties = { ...(span['properties'] as Record<string, Schema>) }
    Reflect.deleteProperty(properties, 'ended_at')
    span['properties'] = properties
    span['required'] = ['id', 'started_at']
    const lost = compile(checkModule(dropped), scratch)
    expect(lost.length).toBeGreaterThan(0)
    for (const message of lost) expect(message).toContain('wire_is_not_the_client')
  })
})
