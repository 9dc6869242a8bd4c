/**
 * Several server processes on one PostgreSQL database behind no load balancer but the test's
 * own round-robin: any number of instances must give the answers one instance gives.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import pg from 'pg'
import { createTestDatabase } from '../../../test-support/postgres-database.js'
import type { Answer, SpawnedServer } from './support/server.js'
import { newKey, send, spawnServer } from './support/server.js'
import { EXPORT_ENV, startRunningExport, waitForExport } from './support/exports-helpers.js'

async function counter(server: SpawnedServer, name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text()
  const match = new RegExp(`^ticksupply_idempotency_${name}_total (\\d+)$`, 'm').exec(text)
  return Number(match?.[1] ?? 0)
}

async function total(servers: readonly SpawnedServer[], ...names: string[]): Promise<number> {
  let sum = 0
  for (const server of servers) for (const name of names) sum += await counter(server, name)
  return sum
}

async function rows(databaseUrl: string, sql: string, params: unknown[] = []): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    const result = await client.query<{ n: string }>(sql, params)
    return Number(result.rows[0]?.n ?? 0)
  } finally {
    await client.end()
  }
}

const subscriptionsOf = (databaseUrl: string, datastreamId: number) =>
  rows(databaseUrl, 'SELECT COUNT(*) AS n FROM subscriptions WHERE datastream_id = $1', [
    datastreamId,
  ])
const spansOf = (databaseUrl: string, datastreamId: number) =>
  rows(
    databaseUrl,
    'SELECT COUNT(*) AS n FROM spans p JOIN subscriptions s ON s.id = p.subscription_id WHERE s.datastream_id = $1',
    [datastreamId],
  )

describe('three instances on one PostgreSQL', () => {
  let databaseUrl = ''
  let servers: SpawnedServer[] = []

  beforeAll(async () => {
    databaseUrl = await createTestDatabase(inject('postgresUrl'))
    // Started together: migrations and the catalog seed must take turns, not race.
    servers = await Promise.all(
      [0, 1, 2].map(() =>
        spawnServer({
          DATABASE_URL: databaseUrl,
          TICKSUPPLY_TEST_HANDLER_DELAY_MS: '400',
          // A poll of 20 s within a wait of 30 s: a duplicate answered in time was woken by the
          // completion's notification, not by its timer.
          IDEMPOTENCY_POLL_MS: '20000',
          IDEMPOTENCY_WAIT_MS: '30000',
        }),
      ),
    )
  })

  afterAll(() => {
    for (const server of servers) server.kill()
  })

  it('runs 300 concurrent requests with one key, spread over the three, exactly once', async () => {
    const key = newKey()
    const answers = await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        send(`${servers[i % 3]!.url}/v1/subscriptions`, { key, body: { datastream_id: 101 } }),
      ),
    )
    expect(await total(servers, 'claims', 'claims_takeover')).toBe(1)
    expect(await subscriptionsOf(databaseUrl, 101)).toBe(1)
    expect(await spansOf(databaseUrl, 101)).toBe(1)
    const ids = new Set<string>()
    for (const answer of answers) {
      if (answer.status === 201) ids.add(answer.json<{ id: string }>().id)
      else
        expect(answer.json()).toEqual({
          error: {
            code: 'already_exists',
            message: 'Request is still in progress. Please retry later.',
          },
        })
    }
    expect(ids.size).toBe(1)
    // Every duplicate on the other two instances was woken by a notification in time.
    expect(answers.filter((answer) => answer.status === 201)).toHaveLength(300)
    expect(
      answers.filter((answer) => answer.headers.get('idempotent-replayed') === 'true'),
    ).toHaveLength(299)
  })

  it('wakes a duplicate waiting on one instance when the original completes on another', async () => {
    const key = newKey()
    const before = await counter(servers[1]!, 'wakes')
    const original = send(`${servers[0]!.url}/v1/subscriptions`, {
      key,
      body: { datastream_id: 102 },
    })
    await sleep(100)
    const duplicate = await send(`${servers[1]!.url}/v1/subscriptions`, {
      key,
      body: { datastream_id: 102 },
    })
    const first = await original
    expect(first.status).toBe(201)
    expect(duplicate.status).toBe(201)
    expect(duplicate.headers.get('idempotent-replayed')).toBe('true')
    expect(duplicate.body.equals(first.body)).toBe(true)
    expect(await counter(servers[1]!, 'wakes')).toBeGreaterThan(before)
  })

  it('answers a different request under the key with the mismatch 409 on every instance', async () => {
    const key = newKey()
    expect(
      (await send(`${servers[0]!.url}/v1/subscriptions`, { key, body: { datastream_id: 103 } }))
        .status,
    ).toBe(201)
    for (const server of servers) {
      const answer = await send(`${server.url}/v1/subscriptions`, {
        key,
        body: { datastream_id: 104 },
      })
      expect(answer.status).toBe(409)
      expect(answer.text).toContain('Idempotency key reused with different request parameters')
    }
  })
})

describe('an instance that dies inside a keyed operation', () => {
  /** Retries the create on the survivors until it is not "still in progress"; counts attempts. */
  async function retryOnSurvivors(
    survivors: readonly SpawnedServer[],
    key: string,
    body: { datastream_id: number },
  ): Promise<{ answer: Answer; attempts: number }> {
    let answer = await send(`${survivors[0]!.url}/v1/subscriptions`, { key, body })
    let attempts = 1
    for (; answer.status === 409 && attempts < 60; attempts++) {
      await sleep(250)
      answer = await send(`${survivors[attempts % survivors.length]!.url}/v1/subscriptions`, {
        key,
        body,
      })
    }
    return { answer, attempts }
  }

  it('leaves the key to the others as soon as its process is killed; the operation runs once in total', async () => {
    const databaseUrl = await createTestDatabase(inject('postgresUrl'))
    // A lease of ten minutes: the takeover below can only come from the dead session.
    const env = { DATABASE_URL: databaseUrl, IDEMPOTENCY_LEASE_MS: '600000' }
    const doomed = await spawnServer({ ...env, TICKSUPPLY_TEST_HANDLER_DELAY_MS: '5000' })
    const others = await Promise.all([spawnServer(env), spawnServer(env)])
    try {
      const key = newKey()
      const body = { datastream_id: 105 }
      const lost = send(`${doomed.url}/v1/subscriptions`, { key, body }).catch(
        (error: unknown) => error,
      )
      await sleep(300)
      doomed.kill('SIGKILL')
      await doomed.exited
      expect(await lost).toBeInstanceOf(Error)

      const { answer, attempts } = await retryOnSurvivors(others, key, body)
      expect(answer.status).toBe(201)
      // A handful of quick retries, not a lease: the database ended the dead process's session.
      expect(attempts).toBeLessThanOrEqual(8)
      expect(await total(others, 'claims_takeover')).toBe(1)
      expect(await total(others, 'claims', 'claims_takeover')).toBe(1)
      expect(await subscriptionsOf(databaseUrl, 105)).toBe(1)
      expect(await spansOf(databaseUrl, 105)).toBe(1)
      const replay = await send(`${others[1].url}/v1/subscriptions`, { key, body })
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
      expect(replay.body.equals(answer.body)).toBe(true)
    } finally {
      doomed.kill()
      for (const server of others) server.kill()
    }
  })

  it('leaves the key to the others once its lease lapses when it vanishes without closing its connections', async () => {
    const databaseUrl = await createTestDatabase(inject('postgresUrl'))
    // No waiting: each retry answers at once whether the key is still held.
    const env = {
      DATABASE_URL: databaseUrl,
      IDEMPOTENCY_LEASE_MS: '3000',
      IDEMPOTENCY_WAIT_MS: '0',
    }
    const frozen = await spawnServer({ ...env, TICKSUPPLY_TEST_HANDLER_DELAY_MS: '1000' })
    const others = await Promise.all([spawnServer(env), spawnServer(env)])
    try {
      const key = newKey()
      const body = { datastream_id: 106 }
      const stalled = send(`${frozen.url}/v1/subscriptions`, { key, body }).catch(
        (error: unknown) => error,
      )
      await sleep(300)
      // Frozen, as a machine that vanished: its sockets stay open, it renews nothing.
      frozen.kill('SIGSTOP')
      const early = await send(`${others[0].url}/v1/subscriptions`, { key, body })
      expect(early.status).toBe(409)
      const { answer } = await retryOnSurvivors(others, key, body)
      expect(answer.status).toBe(201)
      expect(await total(others, 'claims_takeover')).toBe(1)
      // Thawed, the frozen instance finds its claim taken: its operation does not commit.
      frozen.kill('SIGCONT')
      await stalled
      await sleep(1_500)
      expect(await subscriptionsOf(databaseUrl, 106)).toBe(1)
      expect(await spansOf(databaseUrl, 106)).toBe(1)
      const replay = await send(`${frozen.url}/v1/subscriptions`, { key, body })
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
      expect(replay.body.equals(answer.body)).toBe(true)
    } finally {
      frozen.kill('SIGCONT')
      frozen.kill()
      for (const server of others) server.kill()
    }
  })
})

describe('an instance frozen inside a transaction', () => {
  it('has its session ended within the lease, so its locks stop holding up the account on the others', async () => {
    const databaseUrl = await createTestDatabase(inject('postgresUrl'))
    const env = {
      DATABASE_URL: databaseUrl,
      IDEMPOTENCY_LEASE_MS: '2000',
      RATE_LIMIT_PER_MINUTE: '1000000',
      RATE_LIMIT_PER_HOUR: '100000000',
    }
    const frozen = await spawnServer(env)
    const other = await spawnServer(env)
    const inTransaction = () =>
      rows(
        databaseUrl,
        "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction' AND backend_xid IS NOT NULL",
      )
    try {
      // Every request takes a token from the account's bucket rows, locked until its commit:
      // freeze the instance at random moments of a burst until it is caught holding them (a
      // transaction that has written, so has an id, and waits for its next statement).
      let caught = false
      for (let attempt = 0; attempt < 60 && !caught; attempt++) {
        const burst = Array.from({ length: 20 }, () =>
          send(`${frozen.url}/v1/exchanges`).catch(() => undefined),
        )
        await sleep(1 + (attempt % 4))
        frozen.kill('SIGSTOP')
        caught = (await inTransaction()) > 0
        if (!caught) {
          frozen.kill('SIGCONT')
          await Promise.all(burst)
        }
      }
      expect(caught).toBe(true)
      // The same account on another instance: answered once the database has ended the
      // frozen session (within the lease), not held until the deadline's 408.
      const read = await send(`${other.url}/v1/exchanges`)
      expect(read.status, read.text).toBe(200)
      const created = await send(`${other.url}/v1/subscriptions`, {
        key: newKey(),
        body: { datastream_id: 107 },
      })
      expect(created.status, created.text).toBe(201)
      expect(await inTransaction()).toBe(0)
    } finally {
      frozen.kill('SIGCONT')
      frozen.kill()
      other.kill()
    }
  })
})

describe('the rate limit across instances', () => {
  it('refuses the 201st request of one account, whichever instance serves it', async () => {
    const databaseUrl = await createTestDatabase(inject('postgresUrl'))
    // Both buckets hold 200; the hour bucket gives one back only every 18 s, so no refill lands
    // between the 200th request and the checks below (the minute bucket alone would give one
    // back every 300 ms while the burst runs).
    const env = {
      DATABASE_URL: databaseUrl,
      RATE_LIMIT_PER_MINUTE: '200',
      RATE_LIMIT_PER_HOUR: '200',
    }
    const servers = await Promise.all([spawnServer(env), spawnServer(env), spawnServer(env)])
    try {
      const answers = await Promise.all(
        Array.from({ length: 200 }, (_, i) => send(`${servers[i % 3]!.url}/v1/exchanges`)),
      )
      expect(answers.filter((answer) => answer.status === 200)).toHaveLength(200)
      const remaining = answers.map((answer) =>
        Number(answer.headers.get('x-ratelimit-remaining-hour')),
      )
      expect(new Set(remaining).size).toBe(200)
      expect(Math.min(...remaining)).toBe(0)
      for (const server of servers) {
        const refused = await send(`${server.url}/v1/exchanges`)
        expect(refused.status).toBe(429)
        expect(refused.json<{ error: { code: string } }>().error.code).toBe('rate_limited')
        expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0)
        expect(refused.headers.get('x-ratelimit-reset-hour')).not.toBeNull()
      }
    } finally {
      for (const server of servers) server.kill()
    }
  })
})

describe('the rate limit across instances whose clocks disagree', () => {
  it('refills on the database clock: an instance an hour ahead does not hold the others back for an hour', async () => {
    const databaseUrl = await createTestDatabase(inject('postgresUrl'))
    // Five a minute: a token every 12 s.
    const env = { DATABASE_URL: databaseUrl, RATE_LIMIT_PER_MINUTE: '5' }
    const [ontime, ahead] = await Promise.all([
      spawnServer(env),
      spawnServer({
        ...env,
        NODE_OPTIONS: '--import=data:text/javascript,Date.now=((n)=>()=>n()+36e5)(Date.now)',
      }),
    ])
    try {
      // The account's five, taken through the instance whose clock runs an hour ahead.
      for (let i = 0; i < 5; i++) expect((await send(`${ahead.url}/v1/exchanges`)).status).toBe(200)
      for (const server of [ontime, ahead]) {
        const refused = await send(`${server.url}/v1/exchanges`)
        expect(refused.status).toBe(429)
        // On each instance's own clock the on-time one would wait out the hour the other
        // stamped the bucket with.
        expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(12)
      }
    } finally {
      ontime.kill()
      ahead.kill()
    }
  })
})

describe('export leases across instances', () => {
  let databaseUrl = ''
  const running: SpawnedServer[] = []

  beforeAll(async () => {
    databaseUrl = await createTestDatabase(inject('postgresUrl'))
  })

  afterAll(() => {
    for (const server of running) server.kill('SIGKILL')
  })

  async function start(env: Record<string, string>): Promise<SpawnedServer> {
    const server = await spawnServer({ ...EXPORT_ENV, DATABASE_URL: databaseUrl, ...env })
    running.push(server)
    return server
  }

  const attempts = (id: string) =>
    rows(databaseUrl, 'SELECT attempts AS n FROM exports WHERE id = $1', [id])
  const succeeded = (id: string) =>
    rows(databaseUrl, "SELECT COUNT(*) AS n FROM exports WHERE id = $1 AND status = 'succeeded'", [
      id,
    ])

  it('are read on the database clock: an instance whose clock runs an hour ahead does not take a held job', async () => {
    // The holder renews its 3 s lease every second and stalls before committing.
    const holder = await start({
      TICKSUPPLY_TEST_EXPORT_DELAY_MS: '60000',
      EXPORT_LEASE_MS: '3000',
    })
    const id = await startRunningExport(holder.url, 1_100)

    // Date.now() an hour ahead in the second instance only: on its own clock every lease the
    // holder wrote lapsed long ago.
    const ahead = await start({
      EXPORT_LEASE_MS: '3000',
      NODE_OPTIONS: '--import=data:text/javascript,Date.now=((n)=>()=>n()+36e5)(Date.now)',
    })
    // It polls every 50 ms; thirty polls later the job is still the holder's first attempt.
    await sleep(1_500)
    expect(await attempts(id)).toBe(1)
    expect((await waitForExport(ahead.url, id, () => true)).status).toBe('running')

    // Once the holder is gone its lease lapses on the database clock, and the other takes over.
    holder.kill('SIGKILL')
    await holder.exited
    expect((await waitForExport(ahead.url, id)).status).toBe('succeeded')
    expect(await attempts(id)).toBe(2)
    expect(await succeeded(id)).toBe(1)
  })
})
