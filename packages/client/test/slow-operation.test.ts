import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RequestInProgressError, TimeoutError, createClient } from '../src/index.js'
import type { RetryEvent, Subscription } from '../src/index.js'
import type { RunningServer } from './support/server-process.js'
import { startServer } from './support/server-process.js'

let server: RunningServer

beforeAll(async () => {
  // Every create takes 2.5 s on the server, and a duplicate waits only 200 ms for it before
  // answering "still in progress".
  server = await startServer({
    accounts: ['slow'],
    env: { TICKSUPPLY_TEST_HANDLER_DELAY_MS: '2500', IDEMPOTENCY_WAIT_MS: '200' },
  })
})
afterAll(async () => {
  await server.stop()
})

describe('a create slower than the client timeout', () => {
  it('times out, gets "still in progress", and ends with the replay of the one operation', async () => {
    const events: RetryEvent[] = []
    const client = createClient({
      apiKey: server.apiKeys.get('slow') ?? '',
      baseUrl: server.baseUrl,
      timeoutMs: 1_000,
      retry: { maxAttempts: 20, baseDelayMs: 50, maxDelayMs: 200, maxRetryAfterMs: 300 },
      onRetry: (event) => events.push(event),
    })

    const response = await client.request<Subscription>({
      method: 'POST',
      path: '/v1/subscriptions',
      body: { datastream_id: 3 },
    })

    expect(response).toMatchObject({ status: 201, replayed: true })
    expect(response.data.datastream_id).toBe(3)
    expect(events[0]?.error).toBeInstanceOf(TimeoutError)
    expect(events.some((event) => event.error instanceof RequestInProgressError)).toBe(true)
    expect(new Set(events.map((event) => event.idempotencyKey))).toEqual(
      new Set([response.idempotencyKey]),
    )
    const direct = createClient({
      apiKey: server.apiKeys.get('slow') ?? '',
      baseUrl: server.baseUrl,
    })
    expect((await direct.subscriptions.list()).total).toBe(1)
  })
})
