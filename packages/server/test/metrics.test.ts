/**
 * `/metrics`: the Prometheus exposition of the requests and of the idempotency layer. Each test
 * makes the layer do one thing (a replay, a mismatch, an "in progress" answer, a takeover, a
 * store error, a purge) and reads the series that must have moved, from the served text; no
 * raw key, API key or resource id ever appears in it.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { createTestDatabase } from '../../../test-support/postgres-database.js'
import type { Answer, TestServer } from './support/server.js'
import {
  ACME_KEY,
  GLOBEX_KEY,
  datastreamIds,
  errorOf,
  eventually,
  newKey,
  sampleValue,
  scrapeCounter,
  send,
  sendAndAbandon,
  seriesName,
  spawnServer,
  startServer,
  executeSql,
} from './support/server.js'

const nextDatastream = datastreamIds(1)

function create(url: string, key: string, datastreamId: number, apiKey = ACME_KEY) {
  return send(`${url}/v1/subscriptions`, { key, apiKey, body: { datastream_id: datastreamId } })
}

async function scrape(url: string): Promise<string> {
  const answer = await send(`${url}/metrics`, { apiKey: null })
  expect(answer.status).toBe(200)
  return answer.text
}

const idem = (name: string, labels?: Record<string, string>) =>
  seriesName(`ticksupply_idempotency_${name}_total`, labels)

const requests = (method: string, route: string, status: number) =>
  seriesName('ticksupply_http_requests_total', { method, route, status: String(status) })

/** Every form a client may write a key in, and the parts of it: none may show in the text. */
/**
 * The key as it could leak: whole, without dashes, in either case, and each group of it that
 * holds both a digit and a letter. A group of digits alone turns up in the numbers of any scrape
 * by chance (`4304` in a byte count failed a run), and one of letters alone in its words.
 */
function keyForms(key: string): string[] {
  const simple = key.replace(/-/g, '')
  const groups = key.split('-').filter((group) => /[0-9]/.test(group) && /[a-f]/i.test(group))
  return [key, key.toUpperCase(), simple, simple.toUpperCase(), ...groups]
}

describe('/metrics', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startServer({
      IDEMPOTENCY_WAIT_MS: '100',
      IDEMPOTENCY_POLL_MS: '20',
      TICKSUPPLY_TEST_HANDLER_DELAY_MS: '600',
    })
  })
  afterAll(async () => {
    await server.close()
  })

  it('serves the Prometheus text format with HELP and TYPE, and the process metrics', async () => {
    const answer = await send(`${server.url}/metrics`, { apiKey: null })
    expect(answer.status).toBe(200)
    expect(answer.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    for (const name of [
      'ticksupply_http_requests_total',
      'ticksupply_http_request_duration_seconds',
      'ticksupply_idempotency_claims_total',
      'ticksupply_idempotency_claims_takeover_total',
      'ticksupply_idempotency_replayed_total',
      'ticksupply_idempotency_conflicts_total',
      'ticksupply_idempotency_wait_seconds',
      'ticksupply_idempotency_wakes_total',
      'ticksupply_idempotency_lease_lost_total',
      'ticksupply_idempotency_store_errors_total',
      'ticksupply_idempotency_in_progress',
      'ticksupply_idempotency_purge_runs_total',
      'ticksupply_idempotency_purged_records_total',
      'ticksupply_idempotency_cache_bytes',
      'ticksupply_idempotency_cache_hit_ratio',
      'ticksupply_idempotency_pending_retries',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(answer.text, name).toContain(`# HELP ${name} `)
      expect(answer.text, name).toContain(`# TYPE ${name} `)
    }
  })

  it('counts requests by declared route and status, never by raw path', async () => {
    const created = await create(server.url, newKey(), nextDatastream())
    expect(created.status).toBe(201)
    const { id } = created.json<{ id: string }>()
    await send(`${server.url}/v1/subscriptions/${id}`)
    await send(`${server.url}/v1/subscriptions/sub_${'0'.repeat(32)}`)
    await send(`${server.url}/no/such/route/${newKey()}`)
    const text = await scrape(server.url)
    expect(sampleValue(text, requests('POST', '/v1/subscriptions', 201))).toBeGreaterThanOrEqual(1)
    expect(sampleValue(text, requests('GET', '/v1/subscriptions/:id', 200))).toBeGreaterThanOrEqual(
      1,
    )
    expect(sampleValue(text, requests('GET', '/v1/subscriptions/:id', 404))).toBeGreaterThanOrEqual(
      1,
    )
    expect(sampleValue(text, requests('GET', 'unmatched', 404))).toBeGreaterThanOrEqual(1)
    expect(text).not.toContain(id)
    expect(text).not.toContain('/no/such/route')
    expect(text).toMatch(
      /^ticksupply_http_request_duration_seconds_bucket\{le="0\.005",method="POST",route="\/v1\/subscriptions",status_class="2xx"\} \d+$/m,
    )
  })

  it('moves the claim counter on a first request and the replay counter on its repeats', async () => {
    const key = newKey()
    const datastream = nextDatastream()
    const before = await scrape(server.url)
    await create(server.url, key, datastream)
    // The first replay may read the record from the database; the second is a cache hit.
    await create(server.url, key, datastream)
    await create(server.url, key, datastream)
    const after = await scrape(server.url)
    expect(sampleValue(after, idem('claims')) - sampleValue(before, idem('claims'))).toBe(1)
    expect(sampleValue(after, idem('replayed')) - sampleValue(before, idem('replayed'))).toBe(2)
    expect(sampleValue(after, idem('completed')) - sampleValue(before, idem('completed'))).toBe(1)
    expect(sampleValue(after, 'ticksupply_idempotency_cache_entries')).toBeGreaterThanOrEqual(1)
    expect(sampleValue(after, 'ticksupply_idempotency_cache_bytes')).toBeGreaterThan(0)
    expect(sampleValue(after, 'ticksupply_idempotency_cache_hit_ratio')).toBeGreaterThan(0)
    for (const form of keyForms(key)) expect(after).not.toContain(form)
  })

  it("shows the SQLite store's filter of keys once it has read the file in, and none on PostgreSQL", async () => {
    expect((await create(server.url, newKey(), nextDatastream())).status).toBe(201)
    if (server.filename === '') {
      expect(await scrape(server.url)).not.toContain('key_filter')
      return
    }
    expect(
      await eventually(
        async () =>
          sampleValue(await scrape(server.url), 'ticksupply_idempotency_key_filter_ready') === 1,
      ),
    ).toBe(true)
    const text = await scrape(server.url)
    expect(sampleValue(text, 'ticksupply_idempotency_key_filter_keys')).toBeGreaterThanOrEqual(1)
  })

  it('counts a reused key with another body as a mismatch conflict', async () => {
    const key = newKey()
    const before = await scrape(server.url)
    await create(server.url, key, nextDatastream())
    const conflict = await create(server.url, key, nextDatastream())
    expect(conflict.status).toBe(409)
    const after = await scrape(server.url)
    const mismatch = idem('conflicts', { reason: 'mismatch' })
    expect(sampleValue(after, mismatch) - sampleValue(before, mismatch)).toBe(1)
    expect(sampleValue(after, idem('claims')) - sampleValue(before, idem('claims'))).toBe(1)
  })

  it('counts an "in progress" answer, the timed-out wait, and the record in progress', async () => {
    const key = newKey()
    const datastream = nextDatastream()
    const before = await scrape(server.url)
    const original = create(server.url, key, datastream)
    expect(
      await eventually(
        async () =>
          sampleValue(await scrape(server.url), 'ticksupply_idempotency_in_progress') >= 1,
      ),
    ).toBe(true)
    const duplicate = await create(server.url, key, datastream)
    expect(duplicate.status).toBe(409)
    expect(errorOf(duplicate).message).toBe('Request is still in progress. Please retry later.')
    expect((await original).status).toBe(201)
    const after = await scrape(server.url)
    const inProgress = idem('conflicts', { reason: 'in_progress' })
    const timedOut = idem('waits', { outcome: 'timed_out' })
    expect(sampleValue(after, inProgress) - sampleValue(before, inProgress)).toBe(1)
    expect(sampleValue(after, timedOut) - sampleValue(before, timedOut)).toBe(1)
    const waitCount = seriesName('ticksupply_idempotency_wait_seconds_count', {
      outcome: 'timed_out',
    })
    expect(sampleValue(after, waitCount) - sampleValue(before, waitCount)).toBe(1)
    expect(sampleValue(after, 'ticksupply_idempotency_in_progress')).toBe(0)
  })

  it('counts a duplicate woken by the completion as a wait that ended in a replay', async () => {
    const key = newKey()
    const datastream = nextDatastream()
    const slow = await startServer({
      IDEMPOTENCY_WAIT_MS: '5000',
      TICKSUPPLY_TEST_HANDLER_DELAY_MS: '300',
    })
    try {
      const original = create(slow.url, key, datastream)
      expect(await eventually(() => slow.counter('claims') === 1)).toBe(true)
      const duplicate = await create(slow.url, key, datastream)
      expect(duplicate.headers.get('idempotent-replayed')).toBe('true')
      expect((await original).status).toBe(201)
      const text = await scrape(slow.url)
      expect(sampleValue(text, idem('waits', { outcome: 'replayed' }))).toBe(1)
      expect(sampleValue(text, idem('wakes'))).toBe(1)
      expect(sampleValue(text, idem('replayed'))).toBe(1)
    } finally {
      await slow.close()
    }
  })

  it('keeps accounts, API keys and keys out of every label', async () => {
    const key = newKey()
    await create(server.url, key, nextDatastream(), GLOBEX_KEY)
    await sendAndAbandon(server.url, { key: newKey(), body: { datastream_id: nextDatastream() } })
    const text = await scrape(server.url)
    for (const secret of [ACME_KEY, GLOBEX_KEY, 'acme', 'globex', 'acct_', ...keyForms(key)])
      expect(text).not.toContain(secret)
    // Every route label is a declared route (or `unmatched`), whatever paths were asked for.
    const declared = new Set([...server.app.routes.map((route) => route.url), 'unmatched'])
    const routes = new Set([...text.matchAll(/route="([^"]*)"/g)].map((match) => match[1] ?? ''))
    expect(routes.size).toBeGreaterThan(1)
    for (const route of routes) expect(declared.has(route), route).toBe(true)
  })
})

describe('/metrics when the idempotency store fails', () => {
  it('counts store errors while the records table is gone, and the keyed request answers 503', async () => {
    const server = await startServer()
    try {
      const rename = (from: string, to: string) =>
        executeSql(server, `ALTER TABLE ${from} RENAME TO ${to}`)
      const before = server.counter('store_errors')
      await rename('idempotency_records', 'idempotency_records_away')
      let answer: Answer
      try {
        answer = await create(server.url, newKey(), 1)
      } finally {
        await rename('idempotency_records_away', 'idempotency_records')
      }
      expect(answer.status).toBe(503)
      expect(errorOf(answer).code).toBe('unavailable')
      expect(server.counter('store_errors') - before).toBeGreaterThanOrEqual(1)
      const text = await scrape(server.url)
      expect(sampleValue(text, idem('store_errors'))).toBe(server.counter('store_errors'))
      expect(sampleValue(text, idem('claims'))).toBe(0)
    } finally {
      await server.close()
    }
  })
})

describe('/metrics of the purger', () => {
  it('counts purge runs and the expired records they deleted', async () => {
    const server = await startServer({
      IDEMPOTENCY_TTL_SECONDS: '2',
      IDEMPOTENCY_LEASE_MS: '1000',
      REQUEST_DEADLINE_MS: '1000',
      IDEMPOTENCY_PURGE_INTERVAL_MS: '200',
    })
    try {
      // On a busy machine a create can pass its 1 s deadline (nothing stored), and the store's
      // 1 s instance lease can lapse (503 until it is renewed): retried as a client would, with
      // the same key, and only the creates answered 201 have a record for the purger.
      const answers: string[] = []
      for (let index = 0; index < 3; index++) {
        const key = newKey()
        let answer = await create(server.url, key, 100 + index)
        for (let retry = 0; answer.status === 503 && retry < 20; retry++) {
          await new Promise((resolve) => setTimeout(resolve, 200))
          answer = await create(server.url, key, 100 + index)
        }
        answers.push(`${String(answer.status)} ${answer.text}`)
      }
      const stored = answers.filter((answer) => answer.startsWith('201 ')).length
      expect(answers).toContainEqual(expect.stringMatching(/^201 /))
      expect(
        await eventually(() => server.counter('purged_records') >= stored, { attempts: 200 }),
      ).toBe(true)
      const text = await scrape(server.url)
      expect(sampleValue(text, idem('purge_runs', { result: 'ok' }))).toBeGreaterThanOrEqual(1)
      expect(sampleValue(text, idem('purged_records'))).toBe(stored)
      expect(
        await server.query('SELECT CAST(count(*) AS INTEGER) AS n FROM idempotency_records'),
      ).toEqual([{ n: 0 }])
    } finally {
      await server.close()
    }
  })
})

describe('/metrics of a takeover (PostgreSQL, two instances)', () => {
  it('counts the key taken over from a killed instance on the instance that took it', async () => {
    const databaseUrl = await createTestDatabase(inject('postgresUrl'))
    const doomed = await spawnServer({
      DATABASE_URL: databaseUrl,
      TICKSUPPLY_TEST_HANDLER_DELAY_MS: '30000',
    })
    const survivor = await startServer({ DATABASE_URL: databaseUrl })
    try {
      const key = newKey()
      const held = create(doomed.url, key, 7).catch(() => undefined)
      expect(await eventually(async () => (await scrapeCounter(doomed.url, 'claims')) === 1)).toBe(
        true,
      )
      doomed.kill('SIGKILL')
      await doomed.exited
      await held
      let answer = await create(survivor.url, key, 7)
      for (let attempt = 0; answer.status === 409 && attempt < 20; attempt++) {
        await sleep(200)
        answer = await create(survivor.url, key, 7)
      }
      expect(answer.status).toBe(201)
      const text = await scrape(survivor.url)
      expect(sampleValue(text, idem('claims_takeover'))).toBe(1)
      expect(sampleValue(text, idem('claims'))).toBe(0)
      for (const form of keyForms(key)) expect(text).not.toContain(form)
    } finally {
      doomed.kill('SIGKILL')
      await doomed.exited
      await survivor.close()
    }
  })
})
