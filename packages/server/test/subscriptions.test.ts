/** The subscription rules of shared/spec/api.md, over HTTP. */
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { PageOf, Span, Subscription, TestServer } from './support/server.js'
import {
  GLOBEX_KEY,
  KEYS_CLI_JS,
  RFC3339_UTC,
  SPAN_ID,
  SUBSCRIPTION_ID,
  datastreamIds,
  errorOf,
  listSubscriptions,
  runNode,
  send,
  spansOf,
  startServer,
  subscribe,
} from './support/server.js'

vi.setConfig({ testTimeout: 30_000, hookTimeout: 30_000 })

const DELETED = { code: 'permission_denied', message: 'Subscription has been deleted' }

describe('subscriptions', () => {
  let server: TestServer
  let url: string
  const nextDatastream = datastreamIds(1)

  beforeAll(async () => {
    server = await startServer()
    url = server.url
  })
  afterAll(async () => {
    await server.close()
  })

  const action = (id: string, verb: 'pause' | 'resume', apiKey?: string) =>
    send(`${url}/v1/subscriptions/${id}/${verb}`, { method: 'POST', ...(apiKey ? { apiKey } : {}) })
  const remove = (id: string, apiKey?: string) =>
    send(`${url}/v1/subscriptions/${id}`, { method: 'DELETE', ...(apiKey ? { apiKey } : {}) })
  const get = async (id: string) =>
    (await send(`${url}/v1/subscriptions/${id}`)).json<Subscription>()

  describe('create', () => {
    it('answers 201 with the subscription, its datastream and "spans": []', async () => {
      const datastream = nextDatastream() // 1: binance BTCUSDT trade
      const before = Date.now()
      const answer = await send(`${url}/v1/subscriptions`, { body: { datastream_id: datastream } })
      expect(answer.status).toBe(201)
      expect(answer.headers.get('content-type')).toMatch(/^application\/json/)
      const body = answer.json<Subscription>()
      expect(Object.keys(body).sort()).toEqual(
        ['created_at', 'datastream', 'datastream_id', 'id', 'spans', 'status'].sort(),
      )
      expect(body.id).toMatch(SUBSCRIPTION_ID)
      expect(body.datastream_id).toBe(datastream)
      expect(body.status).toBe('active')
      expect(body.created_at).toMatch(RFC3339_UTC)
      expect(Date.parse(body.created_at)).toBeGreaterThanOrEqual(before - 1000)
      expect(body.spans).toEqual([])
      expect(body.datastream).toEqual({
        datastream_id: 1,
        exchange: 'binance',
        instrument: 'BTCUSDT',
        stream_type: 'trade',
        wire_format: 'json',
      })
      // It opened one span, now.
      const spans = await spansOf(url, body.id)
      expect(spans).toHaveLength(1)
      expect(spans[0]!.id).toMatch(SPAN_ID)
      expect(spans[0]!.started_at).toMatch(RFC3339_UTC)
      expect(spans[0]!.ended_at).toBeNull()
      // And GET shows the same subscription (without spans).
      const shown: Partial<Subscription> = { ...body }
      delete shown.spans
      expect(await get(body.id)).toEqual(shown)
    })

    it('answers 404 not_found for an unknown datastream', async () => {
      for (const id of [541, 9_999_999]) {
        const answer = await send(`${url}/v1/subscriptions`, { body: { datastream_id: id } })
        expect(answer.status).toBe(404)
        expect(errorOf(answer).code).toBe('not_found')
      }
    })

    it('answers 409 already_exists with details.subscription_id while an active or paused one exists', async () => {
      const existing = await subscribe(url, nextDatastream())
      for (const state of ['active', 'paused'] as const) {
        if (state === 'paused') expect((await action(existing.id, 'pause')).status).toBe(204)
        const answer = await send(`${url}/v1/subscriptions`, {
          body: { datastream_id: existing.datastream_id },
        })
        expect(answer.status).toBe(409)
        expect(errorOf(answer)).toEqual({
          code: 'already_exists',
          message: `Subscription to datastream ${String(existing.datastream_id)} already exists`,
          details: { subscription_id: existing.id },
        })
      }
    })

    it('reuses a deleted subscription: same id, new created_at, only the new span', async () => {
      const first = await subscribe(url, nextDatastream())
      const [oldSpan] = await spansOf(url, first.id)
      expect((await action(first.id, 'pause')).status).toBe(204)
      expect((await remove(first.id)).status).toBe(204)
      await sleep(10)
      const again = await subscribe(url, first.datastream_id)
      expect(again.id).toBe(first.id)
      expect(again.status).toBe('active')
      expect(Date.parse(again.created_at)).toBeGreaterThan(Date.parse(first.created_at))
      const spans = await spansOf(url, again.id)
      expect(spans).toHaveLength(1)
      expect(spans[0]!.id).not.toBe(oldSpan!.id)
      expect(spans[0]!.ended_at).toBeNull()
      expect((await get(again.id)).status).toBe('active')
    })

    it('lets another account subscribe to the same datastream independently', async () => {
      const acme = await subscribe(url, nextDatastream())
      const globex = await subscribe(url, acme.datastream_id, GLOBEX_KEY)
      expect(globex.id).not.toBe(acme.id)
    })
  })

  describe('pause, resume and delete', () => {
    it('closes the open span on pause; a second pause is 204 and changes nothing', async () => {
      const subscription = await subscribe(url, nextDatastream())
      const paused = await action(subscription.id, 'pause')
      expect(paused.status).toBe(204)
      expect(paused.body).toHaveLength(0)
      expect((await get(subscription.id)).status).toBe('paused')
      const spans = await spansOf(url, subscription.id)
      expect(spans).toHaveLength(1)
      expect(spans[0]!.ended_at).toMatch(RFC3339_UTC)
      await sleep(5)
      expect((await action(subscription.id, 'pause')).status).toBe(204)
      expect(await spansOf(url, subscription.id)).toEqual(spans)
    })

    it('opens a span on resume; resuming an active one is 204 and changes nothing', async () => {
      const subscription = await subscribe(url, nextDatastream())
      expect((await action(subscription.id, 'resume')).status).toBe(204)
      expect(await spansOf(url, subscription.id)).toHaveLength(1)
      expect((await action(subscription.id, 'pause')).status).toBe(204)
      await sleep(5)
      expect((await action(subscription.id, 'resume')).status).toBe(204)
      expect((await get(subscription.id)).status).toBe('active')
      const spans = await spansOf(url, subscription.id)
      expect(spans).toHaveLength(2)
      expect(spans[1]!.ended_at).toBeNull()
      expect((await action(subscription.id, 'resume')).status).toBe(204)
      expect(await spansOf(url, subscription.id)).toEqual(spans)
    })

    it('lists spans oldest first', async () => {
      const subscription = await subscribe(url, nextDatastream())
      for (let round = 0; round < 3; round++) {
        await sleep(3)
        expect((await action(subscription.id, 'pause')).status).toBe(204)
        await sleep(3)
        expect((await action(subscription.id, 'resume')).status).toBe(204)
      }
      const spans = await spansOf(url, subscription.id)
      expect(spans).toHaveLength(4)
      const starts = spans.map((span: Span) => Date.parse(span.started_at))
      expect(starts).toEqual([...starts].sort((a, b) => a - b))
      expect(spans.slice(0, 3).every((span) => span.ended_at !== null)).toBe(true)
      expect(spans[3]!.ended_at).toBeNull()
      for (const span of spans.slice(0, 3)) {
        expect(Date.parse(span.ended_at!)).toBeGreaterThanOrEqual(Date.parse(span.started_at))
      }
    })

    it('deletes with 204, removes every span, and a second delete is 204 too', async () => {
      const subscription = await subscribe(url, nextDatastream())
      const deleted = await remove(subscription.id)
      expect(deleted.status).toBe(204)
      expect(deleted.body).toHaveLength(0)
      expect((await remove(subscription.id)).status).toBe(204)
      const shown = await send(`${url}/v1/subscriptions/${subscription.id}`)
      expect(shown.status).toBe(200)
      expect(shown.json<Subscription>().status).toBe('deleted')
      expect(await spansOf(url, subscription.id)).toEqual([])
    })

    it('answers 403 "Subscription has been deleted" to pause and resume of a deleted one', async () => {
      const subscription = await subscribe(url, nextDatastream())
      expect((await remove(subscription.id)).status).toBe(204)
      for (const verb of ['pause', 'resume'] as const) {
        const answer = await action(subscription.id, verb)
        expect(answer.status).toBe(403)
        expect(errorOf(answer)).toEqual(DELETED)
      }
      expect((await get(subscription.id)).status).toBe('deleted')
    })

    it("answers 404, never 403, for another account's subscription, and leaves it alone", async () => {
      const theirs = await subscribe(url, nextDatastream(), GLOBEX_KEY)
      const attempts = [
        await send(`${url}/v1/subscriptions/${theirs.id}`),
        await send(`${url}/v1/subscriptions/${theirs.id}/spans`),
        await action(theirs.id, 'pause'),
        await action(theirs.id, 'resume'),
        await remove(theirs.id),
      ]
      for (const answer of attempts) {
        expect(answer.status).toBe(404)
        expect(errorOf(answer).code).toBe('not_found')
      }
      const own = await send(`${url}/v1/subscriptions/${theirs.id}`, { apiKey: GLOBEX_KEY })
      expect(own.json<Subscription>().status).toBe('active')
      expect(await spansOf(url, theirs.id, GLOBEX_KEY)).toHaveLength(1)
      // Deleted by its owner, it is still 404 to others.
      expect((await remove(theirs.id, GLOBEX_KEY)).status).toBe(204)
      expect((await action(theirs.id, 'pause')).status).toBe(404)
    })

    it('answers 404 for malformed and unknown subscription ids', async () => {
      const ids = [
        'nope',
        'sub_123',
        'sub_0123456789ABCDEF0123456789ABCDEF',
        'spn_0123456789abcdef0123456789abcdef',
        'sub_0123456789abcdef0123456789abcdef',
        'sub_0123456789abcdef0123456789abcdef0',
      ]
      for (const id of ids) {
        for (const answer of [
          await send(`${url}/v1/subscriptions/${id}`),
          await send(`${url}/v1/subscriptions/${id}/spans`),
          await action(id, 'pause'),
          await action(id, 'resume'),
          await remove(id),
        ]) {
          expect(answer.status, id).toBe(404)
          expect(errorOf(answer).code).toBe('not_found')
        }
      }
    })
  })
})

describe('listing subscriptions', () => {
  let server: TestServer
  let url: string

  beforeAll(async () => {
    server = await startServer()
    url = server.url
  })
  afterAll(async () => {
    await server.close()
  })

  const page = async (query: string, apiKey?: string) => {
    const answer = await send(`${url}/v1/subscriptions${query}`, apiKey ? { apiKey } : {})
    expect(answer.status, answer.text).toBe(200)
    return answer.json<PageOf<Subscription>>()
  }

  it('lists newest first, leaves deleted ones out (also from total), and pages with limit and page_token', async () => {
    const created: Subscription[] = []
    for (let datastream = 1; datastream <= 7; datastream++) {
      created.push(await subscribe(url, datastream))
      await sleep(2)
    }
    expect(
      (await send(`${url}/v1/subscriptions/${created[2]!.id}`, { method: 'DELETE' })).status,
    ).toBe(204)
    const paused = await send(`${url}/v1/subscriptions/${created[4]!.id}/pause`, { method: 'POST' })
    expect(paused.status).toBe(204)
    const expected = created
      .filter((_, index) => index !== 2)
      .reverse()
      .map((sub) => sub.id)

    const whole = await page('')
    expect(whole.limit).toBe(50)
    expect(whole.total).toBe(6)
    expect(whole.next_page_token).toBeNull()
    expect(whole.items.map((sub) => sub.id)).toEqual(expected)
    expect(whole.items.find((sub) => sub.id === created[4]!.id)?.status).toBe('paused')

    const seen: string[] = []
    let token: string | null = null
    for (let round = 0; round < 10; round++) {
      const result: PageOf<Subscription> = await page(
        `?limit=4${token === null ? '' : `&page_token=${token}`}`,
      )
      expect(result.limit).toBe(4)
      expect(result.total).toBe(6)
      seen.push(...result.items.map((sub) => sub.id))
      token = result.next_page_token
      if (token === null) break
    }
    expect(seen).toEqual(expected)
    expect(await page('?limit=100')).toMatchObject({ limit: 100, total: 6 })

    // Another account sees none of them.
    expect(await page('', GLOBEX_KEY)).toEqual({
      items: [],
      total: 0,
      limit: 50,
      next_page_token: null,
    })
  })

  it('is stable under inserts between page reads: nothing repeats, nothing is skipped', async () => {
    const before = (await listSubscriptions(url)).map((sub) => sub.id)
    const first = await page('?limit=2')
    expect(first.items.map((sub) => sub.id)).toEqual(before.slice(0, 2))
    for (const datastream of [30, 31, 32]) await subscribe(url, datastream)
    const rest: string[] = []
    let token = first.next_page_token
    for (let round = 0; round < 10 && token !== null; round++) {
      const next: PageOf<Subscription> = await page(`?limit=2&page_token=${token}`)
      rest.push(...next.items.map((sub) => sub.id))
      token = next.next_page_token
    }
    expect(rest).toEqual(before.slice(2))
  })

  it('answers 400 invalid_argument for a limit out of 1..100 and for a page_token that does not decode', async () => {
    const datastreamToken = (await send(`${url}/v1/datastreams?limit=1`)).json<PageOf<unknown>>()
      .next_page_token
    const bad = [
      'limit=0',
      'limit=101',
      'limit=abc',
      'limit=-1',
      'limit=1.5',
      'limit=',
      'page_token=!!!',
      'page_token=bm90LWpzb24',
      `page_token=${Buffer.from('{"a":"garbage"}').toString('base64url')}`,
      `page_token=${datastreamToken ?? 'x'}`,
      `page_token=${'A'.repeat(600)}`,
    ]
    for (const query of bad) {
      const answer = await send(`${url}/v1/subscriptions?${query}`)
      expect(answer.status, query).toBe(400)
      expect(errorOf(answer).code).toBe('invalid_argument')
    }
  })
})

describe('billing-gated calls', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startServer()
  })
  afterAll(async () => {
    await server.close()
  })

  async function setAccess(status: string): Promise<void> {
    const result = await runNode(KEYS_CLI_JS, ['access', '--account', 'acme', '--status', status], {
      DATABASE_URL: server.databaseUrl,
    })
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain(status)
  }

  it('answers 402 payment_required to create and resume once the account is SUSPENDED, and not to the rest', async () => {
    const active = await subscribe(server.url, 1)
    const paused = await subscribe(server.url, 2)
    expect(
      (await send(`${server.url}/v1/subscriptions/${paused.id}/pause`, { method: 'POST' })).status,
    ).toBe(204)

    await setAccess('SUSPENDED')
    const create = await send(`${server.url}/v1/subscriptions`, { body: { datastream_id: 3 } })
    expect(create.status).toBe(402)
    expect(errorOf(create).code).toBe('payment_required')
    const resume = await send(`${server.url}/v1/subscriptions/${paused.id}/resume`, {
      method: 'POST',
    })
    expect(resume.status).toBe(402)
    expect(errorOf(resume).code).toBe('payment_required')
    expect(await spansOf(server.url, paused.id)).toHaveLength(1)
    // Reading, pausing and deleting are not billing-gated.
    expect((await send(`${server.url}/v1/subscriptions`)).status).toBe(200)
    expect(
      (await send(`${server.url}/v1/subscriptions/${active.id}/pause`, { method: 'POST' })).status,
    ).toBe(204)
    expect(
      (await send(`${server.url}/v1/subscriptions/${active.id}`, { method: 'DELETE' })).status,
    ).toBe(204)
    // Another account is unaffected.
    expect((await subscribe(server.url, 3, GLOBEX_KEY)).status).toBe('active')

    await setAccess('NONE')
    expect(
      (await send(`${server.url}/v1/subscriptions`, { body: { datastream_id: 3 } })).status,
    ).toBe(402)

    await setAccess('ACTIVE')
    expect(
      (await send(`${server.url}/v1/subscriptions`, { body: { datastream_id: 3 } })).status,
    ).toBe(201)
    expect(
      (await send(`${server.url}/v1/subscriptions/${paused.id}/resume`, { method: 'POST' })).status,
    ).toBe(204)
  })
})
