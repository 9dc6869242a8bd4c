/**
 * `PUT /v1/export-schemas/{id}`, the atomic update: the body becomes the next published version
 * in one step, without a draft; `Idempotency-Key` plays no part; `name` and `stream_category`
 * never change.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from './support/server.js'
import { errorOf, GLOBEX_KEY, newKey, send, startServer } from './support/server.js'
import { EXPORT_ENV } from './support/exports-helpers.js'

let server: TestServer
let url: string

beforeAll(async () => {
  server = await startServer(EXPORT_ENV)
  url = server.url
})
afterAll(async () => {
  await server.close()
})

interface Schema {
  id: string
  name: string
  stream_category: string
  version: number
  has_draft: boolean
  columns: { output_column: string }[]
  unfold?: unknown
  derive?: unknown
}

const timestamp = { output_column: 'ts', meta: { value: 'collection_timestamp_ns', format: 'ms' } }
const price = {
  output_column: 'price',
  data: { binance: { json: { path: 'p', type: 'decimal(8)' } } },
}
const quantity = {
  output_column: 'qty',
  data: { binance: { json: { path: 'q', type: 'decimal(8)' } } },
}

async function create(): Promise<Schema> {
  const answer = await send(`${url}/v1/export-schemas`, {
    body: {
      name: `replace_${randomUUID().slice(0, 8)}`,
      stream_category: 'trade',
      columns: [timestamp, price],
      unfold: { bybit_spot: { path: 'data' } },
    },
  })
  expect(answer.status, answer.text).toBe(201)
  return answer.json<Schema>()
}

const replace = (id: string, body: unknown, options: { key?: string; apiKey?: string } = {}) =>
  send(`${url}/v1/export-schemas/${id}`, { method: 'PUT', body, ...options })

const columnsOf = (schema: Schema) => schema.columns.map((column) => column.output_column)

describe('PUT /v1/export-schemas/{id}', () => {
  it('publishes the body as version + 1 at once, clearing what it omits', async () => {
    const schema = await create()
    const answer = await replace(schema.id, { columns: [timestamp, price, quantity] })
    expect(answer.status, answer.text).toBe(200)
    const replaced = answer.json<Schema>()
    expect(replaced).toMatchObject({
      id: schema.id,
      name: schema.name,
      version: 2,
      has_draft: false,
    })
    expect(columnsOf(replaced)).toEqual(['ts', 'price', 'qty'])
    expect(replaced.unfold).toBeUndefined()
    // The published version is the new one.
    const read = await send(`${url}/v1/export-schemas/${schema.id}`)
    expect(read.text).toBe(answer.text)
    // No draft was left behind.
    expect((await send(`${url}/v1/export-schemas/${schema.id}/draft`)).status).toBe(404)
  })

  it('ignores Idempotency-Key: the same key with another body replaces again', async () => {
    const schema = await create()
    const key = newKey()
    const first = await replace(schema.id, { columns: [timestamp] }, { key })
    const second = await replace(schema.id, { columns: [timestamp, quantity] }, { key })
    const malformed = await replace(schema.id, { columns: [price] }, { key: 'not-a-uuid' })
    expect([first.status, second.status, malformed.status]).toEqual([200, 200, 200])
    expect(second.headers.has('idempotent-replayed')).toBe(false)
    expect([first, second, malformed].map((answer) => answer.json<Schema>().version)).toEqual([
      2, 3, 4,
    ])
    expect(columnsOf(malformed.json<Schema>())).toEqual(['price'])
  })

  it('accepts name and stream_category sent back unchanged, and refuses a change of either', async () => {
    const schema = await create()
    const same = await replace(schema.id, {
      name: schema.name,
      stream_category: 'trade',
      columns: [price],
    })
    expect(same.status, same.text).toBe(200)
    expect(same.json<Schema>().version).toBe(2)

    const renamed = await replace(schema.id, { name: 'other_name', columns: [timestamp] })
    expect(renamed.status).toBe(400)
    expect(errorOf(renamed)).toEqual({
      code: 'invalid_argument',
      message: `name cannot change (export schema ${schema.id} is named "${schema.name}")`,
    })
    const moved = await replace(schema.id, { stream_category: 'quote', columns: [timestamp] })
    expect(moved.status).toBe(400)
    expect(errorOf(moved).message).toMatch(/^stream_category cannot change/)
    // Neither refused request published anything.
    const read = (await send(`${url}/v1/export-schemas/${schema.id}`)).json<Schema>()
    expect(read.version).toBe(2)
    expect(columnsOf(read)).toEqual(['price'])
  })

  it('leaves a draft as it is', async () => {
    const schema = await create()
    const draft = await send(`${url}/v1/export-schemas/${schema.id}/draft`, {
      body: { columns: [quantity] },
    })
    expect(draft.status).toBe(201)
    const replaced = await replace(schema.id, { columns: [timestamp, price, quantity] })
    expect(replaced.json<Schema>()).toMatchObject({ version: 2, has_draft: true })
    const stillDraft = (await send(`${url}/v1/export-schemas/${schema.id}/draft`)).json<Schema>()
    expect(columnsOf(stillDraft)).toEqual(['qty'])
    // Publishing the draft later makes yet another version.
    const published = await send(`${url}/v1/export-schemas/${schema.id}/publish`, {
      method: 'POST',
    })
    expect(published.json<Schema>()).toMatchObject({ version: 3, has_draft: false })
  })

  it('answers 404 for a built-in, an unknown, a malformed and another account’s schema', async () => {
    const schema = await create()
    const builtIn = (await send(`${url}/v1/export-schemas`)).json<Schema[]>()[0]!
    for (const [id, apiKey] of [
      [builtIn.id, undefined],
      ['sch_00000000000000000000000000000009', undefined],
      ['not-an-id', undefined],
      [schema.id, GLOBEX_KEY],
    ] as const) {
      const answer = await replace(
        id,
        { columns: [timestamp] },
        apiKey === undefined ? {} : { apiKey },
      )
      expect(answer.status, `${id}: ${answer.text}`).toBe(404)
      expect(errorOf(answer).code).toBe('not_found')
    }
    expect((await send(`${url}/v1/export-schemas/${schema.id}`)).json<Schema>().version).toBe(1)
  })

  it('refuses a bad body with 400 and publishes nothing', async () => {
    const schema = await create()
    const cases: [body: unknown, message: RegExp][] = [
      [{}, /^columns must be an array/],
      [{ columns: [] }, /at least 1 column/],
      [{ columns: [timestamp], version: 7 }, /unknown field "version"/],
      [{ columns: [{ output_column: 'x' }] }, /exactly one of meta or data/],
      [[timestamp], /The body must be an object/],
    ]
    for (const [body, message] of cases) {
      const answer = await replace(schema.id, body)
      expect(answer.status, JSON.stringify(body)).toBe(400)
      expect(errorOf(answer).message, JSON.stringify(body)).toMatch(message)
    }
    expect((await send(`${url}/v1/export-schemas/${schema.id}`)).json<Schema>().version).toBe(1)
  })
})

describe('PUT and DELETE of one schema at once', () => {
  it('answers each with a success or a 404, never a 500, and leaves the schema gone', async () => {
    const statuses: number[] = []
    for (let round = 0; round < 15; round++) {
      const schema = await create()
      const updates = Array.from({ length: 4 }, (_, index) =>
        replace(schema.id, { columns: index % 2 === 0 ? [timestamp] : [timestamp, price] }),
      )
      const deletes = Array.from({ length: 2 }, () =>
        send(`${url}/v1/export-schemas/${schema.id}`, { method: 'DELETE', key: newKey() }),
      )
      const answers = await Promise.all([...updates, ...deletes])
      statuses.push(...answers.map((answer) => answer.status))
      const deleted = answers.slice(4).filter((answer) => answer.status === 204)
      // One delete removed it; the other, if it came second, found nothing.
      expect(deleted).toHaveLength(1)
      expect((await send(`${url}/v1/export-schemas/${schema.id}`)).status).toBe(404)
    }
    expect(statuses.filter((status) => ![200, 204, 404].includes(status))).toEqual([])
  })
})
