import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NotFoundError, createClient } from '../src/index.js'
import type { SchemaColumn, TicksupplyClient } from '../src/index.js'
import type { FaultProxy } from './support/fault-proxy.js'
import { startFaultProxy } from './support/fault-proxy.js'
import type { RunningServer } from './support/server-process.js'
import { startServer } from './support/server-process.js'

const TIMESTAMP: SchemaColumn = {
  output_column: 'ts',
  meta: { value: 'collection_timestamp_ns', format: 'ms' },
}
const TIMESTAMP_NS: SchemaColumn = {
  output_column: 'ts_ns',
  meta: { value: 'collection_timestamp_ns', format: 'ns' },
}

let server: RunningServer
let proxy: FaultProxy
let client: TicksupplyClient

beforeAll(async () => {
  server = await startServer({ accounts: ['schemas'] })
  // Every other answer is lost on its way back: each change below runs through a retry.
  proxy = await startFaultProxy({
    targetPort: server.port,
    chooseFault: ({ index }) => (index % 2 === 0 ? 'drop-response' : 'pass'),
  })
  client = createClient({
    apiKey: server.apiKeys.get('schemas') ?? '',
    baseUrl: proxy.url,
    retry: { baseDelayMs: 1, maxDelayMs: 10 },
  })
})
afterAll(async () => {
  await proxy.close()
  await server.stop()
})

describe('an export schema through a proxy that loses every other response', () => {
  it('goes through create, draft, update, publish and delete, each change applied once', async () => {
    const created = await client.exportSchemas.create({
      name: 'timestamps',
      stream_category: 'trade',
      columns: [TIMESTAMP],
    })
    expect(created).toMatchObject({ name: 'timestamps', version: 1, is_built_in: false })

    const copied = await client.exportSchemas.createDraft(created.id)
    expect(copied.columns).toEqual([TIMESTAMP])
    const updated = await client.exportSchemas.updateDraft(created.id, {
      columns: [TIMESTAMP, TIMESTAMP_NS],
    })
    expect(updated.columns).toHaveLength(2)
    expect((await client.exportSchemas.getDraft(created.id)).columns).toHaveLength(2)

    const published = await client.exportSchemas.publish(created.id)
    // Published once despite the lost answer: version 2, not 3 (nor a 404 for "no draft").
    expect(published).toMatchObject({ version: 2, has_draft: false })
    expect((await client.exportSchemas.get(created.id)).columns).toEqual([TIMESTAMP, TIMESTAMP_NS])

    const mine = (await client.exportSchemas.list()).filter((schema) => !schema.is_built_in)
    expect(mine.map((schema) => schema.id)).toEqual([created.id])

    await client.exportSchemas.delete(created.id)
    await expect(client.exportSchemas.get(created.id)).rejects.toBeInstanceOf(NotFoundError)

    // Every POST and DELETE was answered twice by the server (lost, then replayed) under one key.
    const changes = proxy.requests.filter((r) => r.method === 'POST' || r.method === 'DELETE')
    expect(changes.filter((r) => r.upstreamReplayed === true)).toHaveLength(changes.length / 2)
    expect(new Set(changes.map((r) => r.idempotencyKey)).size).toBe(changes.length / 2)
  })
})
