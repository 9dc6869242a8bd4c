/**
 * `/openapi.json` is fit for code generators: Redocly's linter finds no error in it, it names
 * a server and declares every tag, request bodies are typed with their required fields, the
 * file download states its real content types and only the errors it can answer, and int64
 * bounds are exact. It also publishes the idempotency policy with the values the server runs
 * with (issue 8, item 15).
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from './support/server.js'
import { REPO_ROOT, send, startServer } from './support/server.js'

const run = promisify(execFile)

type Json = Record<string, unknown>
interface Operation {
  tags?: string[]
  parameters?: { in: string; name: string; description?: string; schema?: Json }[]
  requestBody?: { required?: boolean; content: Record<string, { schema: Json }> }
  responses: Record<string, { description?: string; content?: Record<string, unknown> }>
}
interface Document {
  info: Json & { description: string; 'x-idempotency-policy': Json }
  servers?: { url: string }[]
  tags?: { name: string; description?: string }[]
  paths: Record<string, Record<string, Operation>>
  components: { schemas: Record<string, Json> }
}

const INT64_MAX = '9223372036854775807'

let server: TestServer
let text: string
let document: Document
let scratch: string

beforeAll(async () => {
  server = await startServer()
  text = (await send(`${server.url}/openapi.json`, { apiKey: null })).text
  document = JSON.parse(text) as Document
  scratch = mkdtempSync(join(tmpdir(), 'ticksupply-openapi-'))
})
afterAll(async () => {
  await server.close()
  rmSync(scratch, { recursive: true, force: true })
})

function operations(): { name: string; method: string; path: string; operation: Operation }[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({
      name: `${method.toUpperCase()} ${path}`,
      method,
      path,
      operation,
    })),
  )
}

interface LintReport {
  totals: { errors: number; warnings: number }
  problems: { ruleId: string; severity: string; location: { pointer: string }[] }[]
}

async function lint(documentText: string): Promise<LintReport> {
  const file = join(scratch, `openapi-${String(Date.now())}.json`)
  writeFileSync(file, documentText)
  const cli = join(REPO_ROOT, 'node_modules/@redocly/cli/bin/cli.js')
  // Exits 1 when it finds errors; the JSON report is on stdout either way.
  const result = await run(process.execPath, [cli, 'lint', file, '--format', 'json'], {
    cwd: scratch,
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: scratch,
      REDOCLY_TELEMETRY: 'off',
      REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true',
    },
    maxBuffer: 64 * 1024 * 1024,
  }).catch((error: unknown) => error as { stdout: string })
  return JSON.parse(result.stdout.slice(result.stdout.indexOf('{'))) as LintReport
}

describe('redocly lint on the served document', () => {
  it('reports no error, and only the warnings explained here', async () => {
    const report = await lint(text)
    expect(report.problems.filter((problem) => problem.severity === 'error')).toEqual([])
    expect(report.totals.errors).toBe(0)
    const warnings = report.problems.map(
      (problem) => `${problem.ruleId} ${problem.location[0]?.pointer ?? ''}`,
    )
    expect(warnings.sort()).toEqual([
      // The project has not chosen a license; the document claims none rather than invent one.
      'info-license #/info',
    ])
  })

  it('is a linter that does report errors', async () => {
    const broken = JSON.parse(text) as Document & { paths: Record<string, unknown> }
    broken.paths['/v1/broken/{id}'] = { get: { responses: { 200: { description: 'no {id}' } } } }
    const report = await lint(JSON.stringify(broken))
    expect(report.totals.errors).toBeGreaterThan(0)
  })
})

describe('the document, for code generators', () => {
  it('names a server', () => {
    expect(document.servers).toEqual([
      { url: '/', description: 'The server that serves this document.' },
    ])
  })

  it('declares every tag it uses, with a description, and uses every tag it declares', () => {
    const declared = (document.tags ?? []).map((tag) => tag.name)
    const used = new Set(operations().flatMap(({ operation }) => operation.tags ?? []))
    expect(new Set(declared)).toEqual(used)
    for (const tag of document.tags ?? []) expect(tag.description, tag.name).toBeTruthy()
  })

  it('types the body of POST /v1/exports, with its required fields', () => {
    const body = document.paths['/v1/exports']?.['post']?.requestBody
    expect(body?.required).toBe(true)
    const schema = body?.content['application/json']?.schema as Json & {
      properties: Record<string, Json>
    }
    expect(schema).toMatchObject({
      type: 'object',
      required: ['datastream_id', 'start_time', 'end_time'],
      additionalProperties: false,
    })
    expect(Object.keys(schema.properties)).toEqual([
      'datastream_id',
      'start_time',
      'end_time',
      'schema',
      'format',
      'format_options',
    ])
    expect(schema.properties['datastream_id']).toMatchObject({
      type: 'integer',
      format: 'int64',
      minimum: 1,
    })
    expect(schema.properties['format']).toMatchObject({ enum: ['csv', 'parquet'] })
    for (const [name, property] of Object.entries(schema.properties))
      expect(property['type'] ?? property['anyOf'], name).toBeDefined()
  })

  it('types every request body, and says that a draft may have none', () => {
    for (const { name, operation } of operations()) {
      const body = operation.requestBody
      if (body === undefined) continue
      const schema = body.content['application/json']?.schema
      expect(schema?.['type'], name).toBe('object')
      expect(schema?.['additionalProperties'], name).toBe(false)
      expect(Object.keys((schema?.['properties'] as Json | undefined) ?? {}), name).not.toEqual([])
    }
    expect(document.paths['/v1/export-schemas/{id}/draft']?.['post']?.requestBody?.required).toBe(
      false,
    )
    expect(document.paths['/v1/export-schemas/{id}/draft']?.['put']?.requestBody?.required).toBe(
      true,
    )
  })

  it('gives the file download its real content types and only the errors it can answer', () => {
    const download = document.paths['/downloads/{artifactId}']?.['get']
    expect(download).toBeDefined()
    for (const status of ['200', '206'])
      expect(Object.keys(download?.responses[status]?.content ?? {}), status).toEqual([
        'application/gzip',
        'application/vnd.apache.parquet',
      ])
    expect(Object.keys(download?.responses ?? {}).sort()).toEqual(
      // 400: a NUL in the query or a parameter given twice, as on every route.
      ['200', '206', '400', '403', '404', '408', '416', '500', '503'].sort(),
    )
  })

  it('writes int64 bounds exactly, never a rounded double', () => {
    expect(text).not.toContain('9223372036854776000')
    expect(text).not.toContain('9223372036854775808')
    // Every int64 in the text carries the exact maximum: count formats and maxima alike.
    const formats = text.match(/"format":"int64"/g)?.length ?? 0
    const maxima = text.match(new RegExp(`"maximum":${INT64_MAX}[,}]`, 'g'))?.length ?? 0
    expect(formats).toBeGreaterThan(5)
    expect(maxima).toBe(formats)
    // The validated subscription body, too.
    const datastreamId = (
      document.paths['/v1/subscriptions']?.['post']?.requestBody?.content['application/json']
        ?.schema as { properties: Record<string, Json> }
    ).properties['datastream_id']
    expect(datastreamId).toMatchObject({ type: 'integer', format: 'int64', minimum: 1 })
    expect(datastreamId).not.toHaveProperty('exclusiveMaximum')
  })
})

describe('the published idempotency policy', () => {
  const keyParameter = (doc: Document) =>
    doc.paths['/v1/subscriptions']?.['post']?.parameters?.find(
      (parameter) => parameter.name === 'Idempotency-Key',
    )

  it('states the lifetime, the wait, the order of checks and what is not stored', () => {
    const description = keyParameter(document)?.description ?? ''
    expect(description).toContain('A key lives 24 hours from its first use')
    expect(description).toContain('waits up to 3 seconds for it')
    expect(description).toContain("past the server's deadline of 10 seconds")
    expect(description).toMatch(/A `5xx` or a `408` `request_timeout` .* is not stored/)
    expect(description).toContain(
      '1. authentication (`401`); 2. rate limit (`429`, with `Retry-After`); 3. the `Idempotency-Key` format (`400`); 4. request validation',
    )
    // Every method the contract says ignores the header, not only the ones this API routes.
    for (const method of ['GET', 'HEAD', 'PUT', 'PATCH', 'OPTIONS']) {
      expect(description, method).toMatch(new RegExp(`every other method \\([^)]*\`${method}\``))
    }
    expect(document.info.description).toContain('a key lives 24 hours from its first use')
    expect(document.info.description).toContain('Every request has a deadline of 10 seconds')
    expect(document.info['x-idempotency-policy']).toMatchObject({
      key_lifetime_seconds: 86_400,
      in_progress_wait_ms: 3_000,
      request_deadline_ms: 10_000,
      not_stored_statuses: ['408', '5xx'],
    })
  })

  it('is the same on every keyed operation', () => {
    const expected = keyParameter(document)?.description
    for (const { name, method, path, operation } of operations()) {
      if (!path.startsWith('/v1/') || (method !== 'post' && method !== 'delete')) continue
      const parameter = operation.parameters?.find((p) => p.name === 'Idempotency-Key')
      expect(parameter?.description, name).toBe(expected)
    }
  })

  it('publishes the values a server runs with, not the defaults', async () => {
    const custom = await startServer({
      IDEMPOTENCY_TTL_SECONDS: '7200',
      IDEMPOTENCY_WAIT_MS: '5000',
      IDEMPOTENCY_LEASE_MS: '20000',
      REQUEST_DEADLINE_MS: '4000',
      RATE_LIMIT_PER_MINUTE: '120',
      RATE_LIMIT_PER_HOUR: '3600',
    })
    try {
      const doc = (await send(`${custom.url}/openapi.json`, { apiKey: null })).json<Document>()
      const description = keyParameter(doc)?.description ?? ''
      expect(description).toContain('A key lives 2 hours from its first use')
      expect(description).toContain('waits up to 5 seconds for it')
      expect(description).toContain("past the server's deadline of 4 seconds")
      expect(description).not.toContain('24 hours')
      expect(doc.info.description).toContain('Every request has a deadline of 4 seconds')
      expect(doc.info.description).toContain('120 requests a minute and 3600 an hour')
      expect(doc.info.description).toContain('when its lease of 20 seconds lapses')
      expect(doc.info['x-idempotency-policy']).toMatchObject({
        key_lifetime_seconds: 7_200,
        in_progress_wait_ms: 5_000,
        lease_ms: 20_000,
        request_deadline_ms: 4_000,
      })
    } finally {
      await custom.close()
    }
  })
})
