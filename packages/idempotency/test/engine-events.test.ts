/**
 * The events operators' metrics are built from: each answer the engine gives is reported once,
 * with what a dashboard needs (how long a duplicate waited).
 */
import { randomUUID } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import type { IdempotencyEvent, IdempotentRequest, StoredResponse } from '@ticksupply/idempotency'
import { RequestInProgressError, createIdempotencyEngine } from '@ticksupply/idempotency'
import { openTemporarySqlite } from './support/sqlite.js'

let opened: ReturnType<typeof openTemporarySqlite> | undefined

afterEach(async () => {
  await opened?.close()
  opened = undefined
})

function keyed(key = randomUUID()): IdempotentRequest {
  return {
    scope: 'acct_1',
    key,
    method: 'POST',
    pathWithQuery: '/v1/things',
    body: Buffer.from('{}'),
  }
}

const created: StoredResponse = {
  status: 201,
  headers: { 'content-type': 'application/json' },
  body: Buffer.from('{"id":1}'),
  requestId: 'req_1',
}

function recording(waitMs: number) {
  opened = openTemporarySqlite()
  const events: IdempotencyEvent[] = []
  const engine = createIdempotencyEngine({
    store: opened.store,
    waitMs,
    initialPollMs: 5,
    onEvent: (event) => {
      events.push(event)
    },
  })
  return { engine, events, types: () => events.map((event) => event.type) }
}

describe('engine events', () => {
  it('reports "in progress" for a duplicate answered without a wait', async () => {
    const { engine, types } = recording(0)
    const request = keyed()
    const first = await engine.begin(request)
    await expect(engine.begin(request)).rejects.toBeInstanceOf(RequestInProgressError)
    expect(types()).toEqual(['claimed', 'in_progress'])
    if (first.kind === 'claimed') await first.claim.release()
  })

  it('reports a timed-out wait with its duration, then "in progress"', async () => {
    const { engine, events, types } = recording(40)
    const request = keyed()
    const first = await engine.begin(request)
    await expect(engine.begin(request)).rejects.toBeInstanceOf(RequestInProgressError)
    expect(types()).toEqual(['claimed', 'waited', 'in_progress'])
    const waited = events.find((event) => event.type === 'waited')
    expect(waited).toMatchObject({ outcome: 'timed_out' })
    expect(waited?.type === 'waited' && waited.waitedMs >= 0).toBe(true)
    if (first.kind === 'claimed') await first.claim.release()
  })

  it('reports a wait that ended in a replay with its duration', async () => {
    const { engine, events } = recording(5_000)
    const request = keyed()
    const first = await engine.begin(request)
    if (first.kind !== 'claimed') throw new Error('expected a claim')
    const duplicate = engine.begin(request)
    await first.claim.complete(created)
    expect((await duplicate).kind).toBe('replay')
    const waited = events.filter((event) => event.type === 'waited')
    expect(waited).toHaveLength(1)
    expect(waited[0]).toMatchObject({ outcome: 'replayed' })
    expect(events.some((event) => event.type === 'in_progress')).toBe(false)
  })
})
