/**
 * `GET /v1/billing/summary`: the period, the stream usage beyond a plan's concurrent streams
 * (computed from spans at an explicit time), access statuses and plans set with the keys CLI,
 * and the 402 of billing-gated calls.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { parseDatabaseUrl } from '../src/config.js'
import type { Database } from '../src/db/database.js'
import { migrate } from '../src/db/migrations.js'
import { openDatabase } from '../src/db/open-database.js'
import { ensureAccount, setAccessStatus, setPlan } from '../src/domain/accounts.js'
import { billingPeriod, billingSummary, formatGib, streamMsBeyond } from '../src/domain/billing.js'
import { seedCatalog } from '../src/domain/catalog.js'
import { newId } from '../src/domain/ids.js'
import { createTestDatabase } from '../../../test-support/postgres-database.js'
import type { TestServer } from './support/server.js'
import {
  GLOBEX_KEY,
  KEYS_CLI_JS,
  RFC3339_UTC,
  errorOf,
  runNode,
  send,
  startServer,
  tempDatabase,
} from './support/server.js'

const at = (iso: string) => Date.parse(iso)
const MINUTE_MS = 60_000

describe('the billing period', () => {
  it('is the calendar month in UTC', () => {
    expect(billingPeriod(at('2026-03-15T12:00:00Z'))).toEqual({
      startMs: at('2026-03-01T00:00:00Z'),
      endMs: at('2026-04-01T00:00:00Z'),
    })
    expect(billingPeriod(at('2026-12-31T23:59:59.999Z'))).toEqual({
      startMs: at('2026-12-01T00:00:00Z'),
      endMs: at('2027-01-01T00:00:00Z'),
    })
    expect(billingPeriod(at('2026-04-01T00:00:00Z')).startMs).toBe(at('2026-04-01T00:00:00Z'))
  })
})

describe('export GiB', () => {
  it('are a decimal string with up to three fractional digits', () => {
    const gib = 1024 ** 3
    expect(formatGib(0)).toBe('0')
    expect(formatGib(1)).toBe('0')
    expect(formatGib(12.5 * gib)).toBe('12.5')
    expect(formatGib(3 * gib + gib / 4)).toBe('3.25')
    expect(formatGib(gib / 1000)).toBe('0.001')
    expect(formatGib(2 * gib)).toBe('2')
  })
})

type Backend = 'sqlite' | 'postgres'

describe.each<Backend>(['sqlite', 'postgres'])('billing usage on %s', (backend) => {
  const NOW = at('2026-03-15T12:00:00Z')
  let db: Database
  let cleanup: () => void = () => undefined
  let accounts = 0
  let datastream = 0

  /** A fresh account with `spans.length` subscriptions, each with the given spans. */
  async function accountWith(
    spans: readonly (readonly [start: string, end: string | null])[][],
  ): Promise<string> {
    const account = await ensureAccount(db, `billing-${String(++accounts)}`, NOW)
    for (const spansOfOne of spans) {
      const subscription = newId('sub', NOW)
      await db.run(
        `INSERT INTO subscriptions (id, account_id, datastream_id, status, created_at) VALUES (?, ?, ?, 'active', ?)`,
        [subscription, account.id, ++datastream, NOW],
      )
      for (const [start, end] of spansOfOne) {
        await db.run(
          'INSERT INTO spans (id, subscription_id, started_at, ended_at) VALUES (?, ?, ?, ?)',
          [newId('spn', NOW), subscription, at(start), end === null ? null : at(end)],
        )
      }
    }
    return account.id
  }
  const nameOf = async (accountId: string) =>
    (await db.get<{ name: string }>('SELECT name FROM accounts WHERE id = ?', [accountId]))!.name

  beforeAll(async () => {
    const sqlite = backend === 'sqlite' ? tempDatabase() : undefined
    const url = sqlite?.url ?? (await createTestDatabase(inject('postgresUrl')))
    db = openDatabase(parseDatabaseUrl(url)).db
    await migrate(db, NOW, seedCatalog)
    cleanup = () => sqlite?.cleanup()
  })
  afterAll(async () => {
    await db.close()
    cleanup()
  })

  const oneHour = ['2026-03-10T00:00:00Z', '2026-03-10T01:00:00Z'] as const
  const seven = <T>(value: T): T[] => Array.from({ length: 7 }, () => value)

  it('counts the stream-minutes beyond the plan’s concurrent streams', async () => {
    // Seven streams at once for an hour on starter (five included): two beyond, 120 minutes.
    const account = await accountWith(seven([oneHour]))
    const summary = await billingSummary(db, account, NOW)
    expect(summary.usage.extra_stream_minutes_total).toBe(120)
    expect(summary).toMatchObject({ access_status: 'ACTIVE', plan_code: 'starter' })
  })

  it('counts nothing for streams within the allowance, one after another or side by side', async () => {
    const account = await accountWith([
      ...Array.from({ length: 5 }, () => [oneHour]),
      // A sixth that records only after the others stopped.
      [['2026-03-10T01:00:00Z', '2026-03-10T05:00:00Z']],
    ])
    expect((await billingSummary(db, account, NOW)).usage.extra_stream_minutes_total).toBe(0)
  })

  it('clips spans to the period and counts an open span up to now', async () => {
    const account = await accountWith([
      // Six streams from the last day of February into March: only the 30 minutes in March.
      ...Array.from({ length: 6 }, () => [
        ['2026-02-28T23:00:00Z', '2026-03-01T00:30:00Z'] as const,
      ]),
    ])
    expect(await streamMsBeyond(db, account, at('2026-03-01T00:00:00Z'), NOW, 5)).toBe(
      30 * MINUTE_MS,
    )
    const open = await accountWith(
      Array.from({ length: 6 }, () => [['2026-03-15T10:00:00Z', null] as const]),
    )
    expect((await billingSummary(db, open, NOW)).usage.extra_stream_minutes_total).toBe(120)
  })

  it('rounds partial minutes down', async () => {
    const account = await accountWith(seven([['2026-03-10T00:00:00Z', '2026-03-10T00:01:59.999Z']]))
    // Two streams beyond for 119.999 s: 239.998 s, three whole minutes.
    expect((await billingSummary(db, account, NOW)).usage.extra_stream_minutes_total).toBe(3)
  })

  it('reports nothing extra while trialing, on the trial plan, or within pro', async () => {
    const trialing = await accountWith(seven([oneHour]))
    await setAccessStatus(db, await nameOf(trialing), 'TRIALING')
    expect((await billingSummary(db, trialing, NOW)).usage.extra_stream_minutes_total).toBe(0)

    const onTrial = await accountWith(seven([oneHour]))
    await setPlan(db, await nameOf(onTrial), 'trial')
    const trial = await billingSummary(db, onTrial, NOW)
    expect(trial.plan_code).toBe('trial')
    expect(trial.usage.extra_stream_minutes_total).toBe(0)

    const onPro = await accountWith(seven([oneHour]))
    await setPlan(db, await nameOf(onPro), 'pro')
    expect((await billingSummary(db, onPro, NOW)).usage.extra_stream_minutes_total).toBe(0)
  })

  /** An export of the account in `status`, finished at `finishedAt`, with files of `sizes`. */
  async function exported(
    accountId: string,
    status: 'succeeded' | 'failed' | 'canceled',
    finishedAt: string,
    sizes: readonly number[],
  ): Promise<void> {
    const id = newId('exp', NOW)
    await db.run(
      `INSERT INTO exports (id, account_id, datastream_id, start_time_ns, end_time_ns, format,
         format_options, schema_snapshot, ranges, status, created_at, finished_at)
       VALUES (?, ?, 1, 0, 1, 'csv', '{}', '{}', '[]', ?, ?, ?)`,
      [id, accountId, status, at(finishedAt), at(finishedAt)],
    )
    for (const [position, bytes] of sizes.entries()) {
      await db.run(
        `INSERT INTO export_artifacts (id, export_id, position, filename, storage_key, bytes, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
        [
          newId('art', NOW),
          id,
          position,
          `part-${String(position)}.csv.gz`,
          `k-${id}-${String(position)}`,
          bytes,
          at(finishedAt),
        ],
      )
    }
  }

  it('counts the GiB of exports that succeeded this period, and whole GiB beyond the plan', async () => {
    const gib = 1024 ** 3
    const account = await accountWith([])
    await setPlan(db, await nameOf(account), 'trial')
    // Trial includes 1 GiB: 2.5 GiB this month, in two exports of several files.
    await exported(account, 'succeeded', '2026-03-02T00:00:00Z', [gib, gib / 2])
    await exported(account, 'succeeded', '2026-03-15T11:59:59Z', [gib])
    // Not counted: failed or canceled, last month, or after now.
    await exported(account, 'failed', '2026-03-03T00:00:00Z', [10 * gib])
    await exported(account, 'canceled', '2026-03-03T00:00:00Z', [10 * gib])
    await exported(account, 'succeeded', '2026-02-28T23:59:59Z', [10 * gib])
    await exported(account, 'succeeded', '2026-03-15T12:00:00Z', [10 * gib])

    // The trial plan has no overage: nothing extra.
    expect((await billingSummary(db, account, NOW)).usage).toEqual({
      extra_stream_minutes_total: 0,
      export_gb_total: '2.5',
      export_gb_extra: 0,
    })
    // On starter (50 GiB included) nothing extra either; past 50 GiB, whole GiB rounded up.
    await setPlan(db, await nameOf(account), 'starter')
    expect((await billingSummary(db, account, NOW)).usage.export_gb_extra).toBe(0)
    await exported(account, 'succeeded', '2026-03-04T00:00:00Z', [48 * gib + 1])
    expect((await billingSummary(db, account, NOW)).usage).toEqual({
      extra_stream_minutes_total: 0,
      export_gb_total: '50.5',
      export_gb_extra: 1,
    })
  })

  it('shows no plan and no period for an account without a subscription (NONE)', async () => {
    const account = await accountWith(seven([oneHour]))
    await setAccessStatus(db, await nameOf(account), 'NONE')
    expect(await billingSummary(db, account, NOW)).toEqual({
      access_status: 'NONE',
      usage: { extra_stream_minutes_total: 0, export_gb_total: '0', export_gb_extra: 0 },
      grace_until: null,
      plan_code: null,
      current_period_end: null,
    })
  })

  it('shows grace_until only while the grace lasts, and SUSPENDED after it', async () => {
    const account = await accountWith([])
    const name = await nameOf(account)
    await setAccessStatus(db, name, 'GRACE', at('2026-03-20T00:00:00Z'))
    expect(await billingSummary(db, account, NOW)).toEqual({
      access_status: 'GRACE',
      usage: { extra_stream_minutes_total: 0, export_gb_total: '0', export_gb_extra: 0 },
      grace_until: '2026-03-20T00:00:00.000Z',
      plan_code: 'starter',
      current_period_end: '2026-04-01T00:00:00.000Z',
    })
    const after = await billingSummary(db, account, at('2026-03-20T00:00:00Z'))
    expect(after.access_status).toBe('SUSPENDED')
    expect(after.grace_until).toBeNull()

    // Another status clears the grace date.
    await setAccessStatus(db, name, 'ACTIVE', at('2026-03-20T00:00:00Z'))
    const row = await db.get<{ grace_until: unknown }>(
      'SELECT grace_until FROM accounts WHERE id = ?',
      [account],
    )
    expect(row?.grace_until).toBeNull()
  })
})

describe('GET /v1/billing/summary', () => {
  let server: TestServer
  const summary = async (apiKey?: string) => {
    const answer = await send(
      `${server.url}/v1/billing/summary`,
      apiKey === undefined ? {} : { apiKey },
    )
    expect(answer.status, answer.text).toBe(200)
    return answer.json<Record<string, unknown>>()
  }
  const keys = (...args: string[]) =>
    runNode(KEYS_CLI_JS, args, { DATABASE_URL: server.databaseUrl })
  const subscribe = (datastreamId: number) =>
    send(`${server.url}/v1/subscriptions`, {
      apiKey: GLOBEX_KEY,
      body: { datastream_id: datastreamId },
    })

  beforeAll(async () => {
    server = await startServer()
  })
  afterAll(async () => {
    await server.close()
  })

  it("answers the account's plan, status and usage this month", async () => {
    const before = billingPeriod(Date.now()).endMs
    const body = await summary()
    const after = billingPeriod(Date.now()).endMs
    expect(Object.keys(body).sort()).toEqual([
      'access_status',
      'current_period_end',
      'grace_until',
      'plan_code',
      'usage',
    ])
    expect(body).toMatchObject({
      access_status: 'ACTIVE',
      usage: { extra_stream_minutes_total: 0, export_gb_total: '0', export_gb_extra: 0 },
      grace_until: null,
      plan_code: 'starter',
    })
    expect(body['current_period_end']).toMatch(RFC3339_UTC)
    expect([before, after]).toContain(Date.parse(String(body['current_period_end'])))
  })

  it('needs an API key', async () => {
    const answer = await send(`${server.url}/v1/billing/summary`, { apiKey: null })
    expect(answer.status).toBe(401)
  })

  it('follows the plan and access status set with the keys CLI, and 402s when suspended', async () => {
    const plan = await keys('plan', '--account', 'globex', '--plan', 'pro')
    expect(plan.code, plan.stderr).toBe(0)
    expect(await summary(GLOBEX_KEY)).toMatchObject({ plan_code: 'pro', access_status: 'ACTIVE' })

    const grace = await keys(
      'access',
      '--account',
      'globex',
      '--status',
      'GRACE',
      '--grace-until',
      '2099-01-01T00:00:00Z',
    )
    expect(grace.code, grace.stderr).toBe(0)
    expect(await summary(GLOBEX_KEY)).toMatchObject({
      access_status: 'GRACE',
      grace_until: '2099-01-01T00:00:00.000Z',
    })
    // Grace is limited access, not none: billing-gated calls still work.
    expect((await subscribe(11)).status).toBe(201)

    const suspended = await keys('access', '--account', 'globex', '--status', 'SUSPENDED')
    expect(suspended.code, suspended.stderr).toBe(0)
    expect(await summary(GLOBEX_KEY)).toMatchObject({
      access_status: 'SUSPENDED',
      grace_until: null,
    })
    const refused = await subscribe(12)
    expect(refused.status).toBe(402)
    expect(errorOf(refused).code).toBe('payment_required')

    const none = await keys('access', '--account', 'globex', '--status', 'NONE')
    expect(none.code, none.stderr).toBe(0)
    expect(await summary(GLOBEX_KEY)).toMatchObject({
      access_status: 'NONE',
      plan_code: null,
      current_period_end: null,
    })
    expect((await subscribe(12)).status).toBe(402)

    await keys('access', '--account', 'globex', '--status', 'ACTIVE')
    expect((await subscribe(12)).status).toBe(201)
  })

  it('treats a grace period that has ended as SUSPENDED, for billing-gated calls too', async () => {
    await keys('access', '--account', 'globex', '--status', 'GRACE')
    expect((await summary(GLOBEX_KEY))['access_status']).toBe('GRACE')
    await server.app.db.run(`UPDATE accounts SET grace_until = ? WHERE name = 'globex'`, [
      Date.now() - 1000,
    ])
    expect(await summary(GLOBEX_KEY)).toMatchObject({
      access_status: 'SUSPENDED',
      grace_until: null,
    })
    expect((await subscribe(13)).status).toBe(402)
    await keys('access', '--account', 'globex', '--status', 'ACTIVE')
  })

  it.each([
    [
      ['plan', '--account', 'globex', '--plan', 'gold'],
      '--plan must be one of trial, starter, pro',
    ],
    [['plan', '--account', 'nobody', '--plan', 'pro'], 'No account named "nobody"'],
    [
      [
        'access',
        '--account',
        'globex',
        '--status',
        'ACTIVE',
        '--grace-until',
        '2099-01-01T00:00:00Z',
      ],
      '--grace-until goes only with --status GRACE',
    ],
    [
      ['access', '--account', 'globex', '--status', 'GRACE', '--grace-until', 'tomorrow'],
      '--grace-until must be an RFC 3339 date-time',
    ],
    [
      [
        'access',
        '--account',
        'globex',
        '--status',
        'GRACE',
        '--grace-until',
        '2001-01-01T00:00:00Z',
      ],
      '--grace-until must be in the future',
    ],
  ])('the keys CLI refuses %j', async (args, message) => {
    const result = await keys(...args)
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(message)
  })
})
