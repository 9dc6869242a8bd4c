import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createClient } from '../src/index.js'
import type { Subscription } from '../src/index.js'
import type { FaultProxy } from './support/fault-proxy.js'
import { startFaultProxy } from './support/fault-proxy.js'
import type { RunningServer } from './support/server-process.js'
import { startServer } from './support/server-process.js'

let server: RunningServer
let proxy: FaultProxy
let apiKey: string

beforeAll(async () => {
  server = await startServer({ accounts: ['lost'] })
  apiKey = server.apiKeys.get('lost') ?? ''
  // The first answer of each of the two tests is lost on the way back.
  proxy = await startFaultProxy({
    targetPort: server.port,
    chooseFault: ({ index }) => (index === 0 || index === 2 ? 'drop-response' : 'pass'),
  })
})

afterAll(async () => {
  await proxy.close()
  await server.stop()
})

const viaProxy = () =>
  createClient({ apiKey, baseUrl: proxy.url, retry: { baseDelayMs: 1, maxDelayMs: 10 } })

describe('a create whose response is lost', () => {
  it('is retried with the same key and receives the replay of the original', async () => {
    const response = await viaProxy().request<Subscription>({
      method: 'POST',
      path: '/v1/subscriptions',
      body: { datastream_id: 1 },
    })

    expect(response).toMatchObject({ status: 201, replayed: true, attempts: 2 })
    const [lost, replayed] = proxy.requests
    expect(lost).toMatchObject({ upstreamStatus: 201, upstreamReplayed: false })
    expect(replayed).toMatchObject({ upstreamStatus: 201, upstreamReplayed: true })
    expect(replayed?.idempotencyKey).toBe(lost?.idempotencyKey)
    expect(response.originalRequestId).toMatch(/^req_[0-9a-f]{16}$/)
    expect(response.originalRequestId).not.toBe(response.requestId)
  })

  it('returns the original resource, and the server holds it once', async () => {
    const subscription = await viaProxy().subscriptions.create({ datastream_id: 2 })

    const lost = proxy.requests[2]
    expect(lost?.fault).toBe('drop-response')
    expect(subscription).toEqual(JSON.parse(lost?.upstreamBody ?? 'null'))
    const direct = createClient({ apiKey, baseUrl: server.baseUrl })
    const page = await direct.subscriptions.list()
    expect(page.total).toBe(2)
    expect(page.items.filter((item) => item.datastream_id === 2)).toHaveLength(1)
  })
})
