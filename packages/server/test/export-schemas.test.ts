import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from './support/server.js'
import { errorOf, GLOBEX_KEY, send, startServer } from './support/server.js'
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
  is_built_in: boolean
  created_at: string
  version: number
  has_draft: boolean
  columns: unknown[]
  unfold?: unknown
  derive?: unknown
}

const timestamp = { output_column: 'ts', meta: { value: 'collection_timestamp_ns', format: 'ms' } }
const price = {
  output_column: 'price',
  data: { binance: { json: { path: 'p', type: 'decimal(8)' } } },
}
const side = {
  output_column: 'side',
  data: {
    binance: {
      json: { path: 'm', type: 'bool' },
      transform: "CASE WHEN {v} THEN 'sell' ELSE 'buy' END",
    },
  },
}

let names = 0
const uniqueName = () => `schema_${String(++names)}_${randomUUID().slice(0, 8)}`

async function create(body: Record<string, unknown>): Promise<Schema> {
  const answer = await send(`${url}/v1/export-schemas`, {
    body: { name: uniqueName(), stream_category: 'trade', columns: [timestamp, price], ...body },
  })
  expect(answer.status, answer.text).toBe(201)
  return answer.json<Schema>()
}

describe('creating an export schema', () => {
  it('answers 201 with version 1, no draft, the columns as given and meta format filled in', async () => {
    const name = uniqueName()
    const answer = await send(`${url}/v1/export-schemas`, {
      body: {
        name,
        stream_category: 'trade',
        columns: [{ output_column: 'ts', meta: { value: 'collection_timestamp_ns' } }, price, side],
        unfold: { bybit_linear: { path: 'data' } },
      },
    })
    expect(answer.status, answer.text).toBe(201)
    const schema = answer.json<Schema>()
    expect(schema.id).toMatch(/^sch_[0-9a-f]{32}$/)
    expect(schema).toMatchObject({
      name,
      stream_category: 'trade',
      is_built_in: false,
      version: 1,
      has_draft: false,
    })
    expect(schema.columns).toEqual([
      { output_column: 'ts', meta: { value: 'collection_timestamp_ns', format: 'ns' } },
      price,
      side,
    ])
    expect(schema.unfold).toEqual({ bybit_linear: { path: 'data' } })
    expect(schema.derive).toBeUndefined()
    expect((await send(`${url}/v1/export-schemas/${schema.id}`)).json()).toEqual(schema)
  })

  it('refuses a name the account already has in that stream category (409), not in another', async () => {
    const first = await create({})
    const again = await send(`${url}/v1/export-schemas`, {
      body: { name: first.name, stream_category: 'trade', columns: [timestamp] },
    })
    expect(again.status).toBe(409)
    expect(errorOf(again).code).toBe('already_exists')
    const otherCategory = await send(`${url}/v1/export-schemas`, {
      body: { name: first.name, stream_category: 'orderbook', columns: [timestamp] },
    })
    expect(otherCategory.status).toBe(201)
    const otherAccount = await send(`${url}/v1/export-schemas`, {
      apiKey: GLOBEX_KEY,
      body: { name: first.name, stream_category: 'trade', columns: [timestamp] },
    })
    expect(otherAccount.status).toBe(201)
  })

  it('refuses built-in names in their category and the reserved raw', async () => {
    for (const [name, category] of [
      ['normalized', 'trade'],
      ['book_5', 'orderbook'],
      ['raw', 'ticker'],
    ]) {
      const answer = await send(`${url}/v1/export-schemas`, {
        body: { name, stream_category: category, columns: [timestamp] },
      })
      expect(answer.status, `${String(name)} ${String(category)}`).toBe(409)
    }
  })

  it('answers 400 Schema has too many columns with max_columns and provided', async () => {
    const columns = Array.from({ length: 101 }, (_, index) => ({
      output_column: `c${String(index)}`,
      meta: { value: 'collection_timestamp_ns' },
    }))
    const answer = await send(`${url}/v1/export-schemas`, {
      body: { name: uniqueName(), stream_category: 'trade', columns },
    })
    expect(answer.status).toBe(400)
    expect(errorOf(answer)).toEqual({
      code: 'invalid_argument',
      message: 'Schema has too many columns',
      details: { max_columns: 100, provided: 101 },
    })
    const hundred = await send(`${url}/v1/export-schemas`, {
      body: { name: uniqueName(), stream_category: 'trade', columns: columns.slice(0, 100) },
    })
    expect(hundred.status).toBe(201)
  })

  it.each([
    ['no columns', { columns: [] }, /at least 1 column/],
    ['an unknown top-level field', { columns: [timestamp], version: 3 }, /unknown field "version"/],
    [
      'an unknown column field',
      { columns: [{ ...timestamp, position: 1 }] },
      /unknown field "position"/,
    ],
    [
      'both meta and data',
      { columns: [{ ...price, meta: timestamp.meta }] },
      /exactly one of meta or data/,
    ],
    ['neither meta nor data', { columns: [{ output_column: 'x' }] }, /exactly one of meta or data/],
    [
      'a bad meta format',
      {
        columns: [
          { output_column: 'x', meta: { value: 'collection_timestamp_ns', format: 'min' } },
        ],
      },
      /format must be one of/,
    ],
    [
      'a bad type',
      {
        columns: [
          { output_column: 'x', data: { binance: { json: { path: 'p', type: 'float' } } } },
        ],
      },
      /type must be one of/,
    ],
    [
      'an unknown exchange',
      { columns: [{ output_column: 'x', data: { kraken: { json: { path: 'p', type: 'f64' } } } }] },
      /unknown exchange "kraken"/,
    ],
    ['a duplicate output column', { columns: [timestamp, timestamp] }, /appears more than once/],
    ['a bad stream category', { stream_category: 'candles' }, /stream_category must be one of/],
  ])('refuses %s with 400', async (_label, override, message) => {
    const answer = await send(`${url}/v1/export-schemas`, {
      body: { name: uniqueName(), stream_category: 'trade', columns: [timestamp], ...override },
    })
    expect(answer.status, answer.text).toBe(400)
    expect(errorOf(answer).code).toBe('invalid_argument')
    expect(errorOf(answer).message).toMatch(message)
  })

  it.each([
    ['a function call', 'lower({v})', /unknown word "lower"/],
    ['a semicolon', '{v}; DROP TABLE exports', /unexpected character ";"/],
    ['a column reference', 'price * 2', /unknown word "price"/],
    ['an unclosed CASE', "CASE WHEN {v} THEN 'a' ELSE 'b'", /expected END/],
    ['an unbalanced parenthesis', '({v} + 1', /expected \)/],
    ['a dangling operator', '{v} +', /expected a value/],
    ['JavaScript', 'process.exit(1)', /unknown word "process"/],
  ])('refuses a transform with %s, naming the problem', async (_label, transform, message) => {
    const answer = await send(`${url}/v1/export-schemas`, {
      body: {
        name: uniqueName(),
        stream_category: 'trade',
        columns: [
          {
            output_column: 'x',
            data: { binance: { json: { path: 'p', type: 'f64' }, transform } },
          },
        ],
      },
    })
    expect(answer.status, answer.text).toBe(400)
    expect(errorOf(answer).message).toMatch(/^Invalid transform/)
    expect(errorOf(answer).message).toMatch(message)
  })

  it('accepts arithmetic with parentheses and CASE with comparisons', async () => {
    const answer = await send(`${url}/v1/export-schemas`, {
      body: {
        name: uniqueName(),
        stream_category: 'trade',
        columns: [
          {
            output_column: 'a',
            data: {
              binance: { json: { path: 'p', type: 'f64' }, transform: '({v} + 1.5) * 2 - -3 / 4' },
            },
          },
          {
            output_column: 'b',
            data: {
              binance: {
                json: { path: 'q', type: 'f64' },
                transform:
                  "CASE WHEN {v} >= 1 AND NOT {v} = 2 THEN 'big' WHEN {v} < 0 THEN 'neg' ELSE 'small' END",
              },
            },
          },
        ],
      },
    })
    expect(answer.status, answer.text).toBe(201)
  })
})

describe('listing and reading schemas', () => {
  it("lists built-ins first (never raw), then the account's own, and not other accounts'", async () => {
    const mine = await create({})
    const theirs = await send(`${url}/v1/export-schemas`, {
      apiKey: GLOBEX_KEY,
      body: { name: uniqueName(), stream_category: 'trade', columns: [timestamp] },
    })
    const list = (await send(`${url}/v1/export-schemas`)).json<Schema[]>()
    const builtIns = list.filter((schema) => schema.is_built_in)
    expect(list.slice(0, builtIns.length)).toEqual(builtIns)
    expect(builtIns.map((schema) => `${schema.name}/${schema.stream_category}`)).toEqual([
      'normalized/trade',
      'normalized/orderbook',
      'normalized/book_update',
      'normalized/quote',
      'normalized/kline',
      'normalized/liquidation',
      'book_5/orderbook',
      'book_20/orderbook',
    ])
    expect(list.some((schema) => schema.name === 'raw')).toBe(false)
    expect(list.some((schema) => schema.id === mine.id)).toBe(true)
    expect(list.some((schema) => schema.id === theirs.json<Schema>().id)).toBe(false)
    expect((await send(`${url}/v1/export-schemas/${theirs.json<Schema>().id}`)).status).toBe(404)
    const book20 = builtIns.find((schema) => schema.name === 'book_20')
    expect(book20?.columns).toHaveLength(81)
  })

  it('answers 404 for an unknown or malformed id', async () => {
    expect((await send(`${url}/v1/export-schemas/sch_${'0'.repeat(31)}f`)).status).toBe(404)
    expect((await send(`${url}/v1/export-schemas/nope`)).status).toBe(404)
  })
})

describe('built-in schemas', () => {
  it('can be read but not deleted, drafted or published (404)', async () => {
    const list = (await send(`${url}/v1/export-schemas`)).json<Schema[]>()
    for (const builtIn of list.filter((schema) => schema.is_built_in)) {
      expect((await send(`${url}/v1/export-schemas/${builtIn.id}`)).json()).toEqual(builtIn)
      expect(
        (await send(`${url}/v1/export-schemas/${builtIn.id}`, { method: 'DELETE' })).status,
      ).toBe(404)
      expect(
        (await send(`${url}/v1/export-schemas/${builtIn.id}/draft`, { method: 'POST' })).status,
      ).toBe(404)
      const put = await send(`${url}/v1/export-schemas/${builtIn.id}/draft`, {
        method: 'PUT',
        body: { columns: [timestamp] },
      })
      expect(put.status).toBe(404)
      expect(
        (await send(`${url}/v1/export-schemas/${builtIn.id}/publish`, { method: 'POST' })).status,
      ).toBe(404)
      expect((await send(`${url}/v1/export-schemas/${builtIn.id}/draft`)).status).toBe(404)
    }
  })
})

describe('drafts and publishing', () => {
  it('copies the published version into a draft on a POST of {} as on an empty one', async () => {
    const schema = await create({})
    for (const rawBody of ['{}', ' { } ']) {
      const draft = await send(`${url}/v1/export-schemas/${schema.id}/draft`, {
        method: 'POST',
        rawBody,
      })
      expect(draft.status, draft.text).toBe(201)
      expect(draft.json()).toEqual({ ...schema, has_draft: true })
    }
    // A body with content is the draft's own, and is checked as one.
    const bad = await send(`${url}/v1/export-schemas/${schema.id}/draft`, {
      method: 'POST',
      body: { columns: [] },
    })
    expect(bad.status).toBe(400)
  })

  it('copies the published version into a draft on an empty POST, publishes it as version 2', async () => {
    const schema = await create({})
    const draft = await send(`${url}/v1/export-schemas/${schema.id}/draft`, { method: 'POST' })
    expect(draft.status, draft.text).toBe(201)
    expect(draft.json()).toEqual({ ...schema, has_draft: true })
    expect((await send(`${url}/v1/export-schemas/${schema.id}`)).json<Schema>().has_draft).toBe(
      true,
    )

    const updated = await send(`${url}/v1/export-schemas/${schema.id}/draft`, {
      method: 'PUT',
      body: { columns: [timestamp, price, side], unfold: { bybit_spot: { path: 'data' } } },
    })
    expect(updated.status, updated.text).toBe(200)
    expect(updated.json<Schema>().columns).toHaveLength(3)
    expect((await send(`${url}/v1/export-schemas/${schema.id}/draft`)).json()).toEqual(
      updated.json(),
    )
    // The published version is untouched until publish.
    expect(
      (await send(`${url}/v1/export-schemas/${schema.id}`)).json<Schema>().columns,
    ).toHaveLength(2)

    const published = await send(`${url}/v1/export-schemas/${schema.id}/publish`, {
      method: 'POST',
    })
    expect(published.status).toBe(200)
    expect(published.json()).toEqual({
      ...schema,
      version: 2,
      has_draft: false,
      columns: [timestamp, price, side],
      unfold: { bybit_spot: { path: 'data' } },
    })
    expect((await send(`${url}/v1/export-schemas/${schema.id}`)).json()).toEqual(published.json())
    expect((await send(`${url}/v1/export-schemas/${schema.id}/draft`)).status).toBe(404)
  })

  it('sets the draft from a body, and a new POST replaces it', async () => {
    const schema = await create({})
    const first = await send(`${url}/v1/export-schemas/${schema.id}/draft`, {
      body: { columns: [price] },
    })
    expect(first.json<Schema>().columns).toEqual([price])
    const second = await send(`${url}/v1/export-schemas/${schema.id}/draft`, {
      body: { columns: [side], derive: null },
    })
    expect(second.status).toBe(201)
    expect(
      (await send(`${url}/v1/export-schemas/${schema.id}/draft`)).json<Schema>().columns,
    ).toEqual([side])
  })

  it('answers 404 to publish, PUT, GET and DELETE without a draft', async () => {
    const schema = await create({})
    const publish = await send(`${url}/v1/export-schemas/${schema.id}/publish`, { method: 'POST' })
    expect(publish.status).toBe(404)
    expect(errorOf(publish)).toEqual({
      code: 'not_found',
      message: `Export schema ${schema.id} has no draft`,
    })
    expect((await send(`${url}/v1/export-schemas/${schema.id}/draft`)).status).toBe(404)
    expect(
      (
        await send(`${url}/v1/export-schemas/${schema.id}/draft`, {
          method: 'PUT',
          body: { columns: [price] },
        })
      ).status,
    ).toBe(404)
    expect(
      (await send(`${url}/v1/export-schemas/${schema.id}/draft`, { method: 'DELETE' })).status,
    ).toBe(404)
  })

  it('discards a draft with DELETE, leaving the published version', async () => {
    const schema = await create({})
    await send(`${url}/v1/export-schemas/${schema.id}/draft`, { body: { columns: [price] } })
    expect(
      (await send(`${url}/v1/export-schemas/${schema.id}/draft`, { method: 'DELETE' })).status,
    ).toBe(204)
    expect((await send(`${url}/v1/export-schemas/${schema.id}`)).json()).toEqual(schema)
  })

  it('validates draft bodies like create bodies, and refuses name or stream_category', async () => {
    const schema = await create({})
    for (const body of [
      { columns: [] },
      { columns: [price], name: 'x' },
      { columns: [price], stream_category: 'trade' },
    ]) {
      const answer = await send(`${url}/v1/export-schemas/${schema.id}/draft`, { body })
      expect(answer.status, JSON.stringify(body)).toBe(400)
    }
    await send(`${url}/v1/export-schemas/${schema.id}/draft`, { method: 'POST' })
    const put = await send(`${url}/v1/export-schemas/${schema.id}/draft`, {
      method: 'PUT',
      body: { columns: [price], name: 'renamed' },
    })
    expect(put.status).toBe(400)
  })

  it('ignores the Idempotency-Key on PUT: every call replaces the draft', async () => {
    const schema = await create({})
    await send(`${url}/v1/export-schemas/${schema.id}/draft`, { method: 'POST' })
    const key = 'not even a uuid'
    const a = await send(`${url}/v1/export-schemas/${schema.id}/draft`, {
      method: 'PUT',
      key,
      body: { columns: [price] },
    })
    const b = await send(`${url}/v1/export-schemas/${schema.id}/draft`, {
      method: 'PUT',
      key,
      body: { columns: [side] },
    })
    expect([a.status, b.status]).toEqual([200, 200])
    expect(b.headers.get('idempotent-replayed')).toBeNull()
    expect(
      (await send(`${url}/v1/export-schemas/${schema.id}/draft`)).json<Schema>().columns,
    ).toEqual([side])
  })
})

describe('deleting a schema', () => {
  it('answers 204, then 404', async () => {
    const schema = await create({})
    expect((await send(`${url}/v1/export-schemas/${schema.id}`, { method: 'DELETE' })).status).toBe(
      204,
    )
    expect((await send(`${url}/v1/export-schemas/${schema.id}`)).status).toBe(404)
    expect((await send(`${url}/v1/export-schemas/${schema.id}`, { method: 'DELETE' })).status).toBe(
      404,
    )
    // The name is free again.
    const again = await send(`${url}/v1/export-schemas`, {
      body: { name: schema.name, stream_category: 'trade', columns: [timestamp] },
    })
    expect(again.status).toBe(201)
  })
})

describe('idempotency on every POST and DELETE of export schemas', () => {
  it('replays the create and answers a changed body with the mismatch 409', async () => {
    const key = randomUUID()
    const body = { name: uniqueName(), stream_category: 'trade', columns: [timestamp] }
    const first = await send(`${url}/v1/export-schemas`, { key, body })
    const replay = await send(`${url}/v1/export-schemas`, { key, body })
    expect(first.status).toBe(201)
    expect(replay.status).toBe(201)
    expect(replay.text).toBe(first.text)
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    const changed = await send(`${url}/v1/export-schemas`, {
      key,
      body: { ...body, name: uniqueName() },
    })
    expect(changed.status).toBe(409)
    expect(errorOf(changed).message).toBe(
      'Idempotency key reused with different request parameters',
    )
  })

  it('lets a client fix a rejected body and retry with the same key (validation before the claim)', async () => {
    const key = randomUUID()
    const name = uniqueName()
    const bad = await send(`${url}/v1/export-schemas`, {
      key,
      body: { name, stream_category: 'trade', columns: [] },
    })
    expect(bad.status).toBe(400)
    const fixed = await send(`${url}/v1/export-schemas`, {
      key,
      body: { name, stream_category: 'trade', columns: [timestamp] },
    })
    expect(fixed.status).toBe(201)
  })

  it.each([
    ['POST draft', 'POST', '/draft'],
    ['DELETE draft', 'DELETE', '/draft'],
    ['POST publish', 'POST', '/publish'],
    ['DELETE schema', 'DELETE', ''],
  ])(
    '%s replays its answer and refuses the key on another schema',
    async (_label, method, suffix) => {
      const schema = await create({})
      const other = await create({})
      if (suffix !== '/draft' || method === 'DELETE') {
        await send(`${url}/v1/export-schemas/${schema.id}/draft`, { method: 'POST' })
      }
      const key = randomUUID()
      const first = await send(`${url}/v1/export-schemas/${schema.id}${suffix}`, { method, key })
      expect(first.status).toBeLessThan(300)
      const replay = await send(`${url}/v1/export-schemas/${schema.id}${suffix}`, { method, key })
      expect(replay.status).toBe(first.status)
      expect(replay.text).toBe(first.text)
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
      const mismatch = await send(`${url}/v1/export-schemas/${other.id}${suffix}`, { method, key })
      expect(mismatch.status).toBe(409)
      expect(errorOf(mismatch).message).toBe(
        'Idempotency key reused with different request parameters',
      )
    },
  )
})
