/**
 * Idempotency keys belong to the account: many accounts sending one and the same key, at once,
 * each get their own operation and their own replay, and never another account's answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Answer, Subscription, TestServer } from './support/server.js'
import { listSubscriptions, newKey, send, startServer } from './support/server.js'

const ACCOUNTS = 20
const accounts = Array.from({ length: ACCOUNTS }, (_, index) => ({
  name: `tenant-${String(index).padStart(2, '0')}`,
  apiKey: `tenant-key-${String(index).padStart(2, '0')}-0123456789abcdef`,
}))

/** The four spellings of one UUID the contract accepts, in both letter cases: one key. */
function spellingsOf(uuid: string): string[] {
  const simple = uuid.replace(/-/g, '')
  return [
    uuid,
    uuid.toUpperCase(),
    simple,
    `{${uuid}}`,
    `urn:uuid:${uuid}`,
    `URN:UUID:${uuid.toUpperCase()}`,
  ]
}

describe('idempotency keys across accounts', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startServer({
      API_KEYS: accounts.map((account) => `${account.name}:${account.apiKey}`).join(','),
    })
  })
  afterAll(async () => {
    await server.close()
  })

  const subscribe = (apiKey: string, key: string, datastreamId: number): Promise<Answer> =>
    send(`${server.url}/v1/subscriptions`, { apiKey, key, body: { datastream_id: datastreamId } })

  it('runs one operation per account for one key sent by every account at once, and replays each its own', async () => {
    const key = newKey()
    const forms = spellingsOf(key)
    const datastream = 7
    const firsts = await Promise.all(
      accounts.map((account, index) =>
        subscribe(account.apiKey, forms[index % forms.length] ?? key, datastream),
      ),
    )
    for (const answer of firsts) {
      expect(answer.status, answer.text).toBe(201)
      expect(answer.headers.get('idempotent-replayed')).toBeNull()
    }
    const ids = firsts.map((answer) => answer.json<Subscription>().id)
    expect(new Set(ids).size).toBe(ACCOUNTS)
    expect(server.claims()).toBe(ACCOUNTS)

    const replays = await Promise.all(
      accounts.map((account, index) =>
        subscribe(account.apiKey, forms[(index + 1) % forms.length] ?? key, datastream),
      ),
    )
    replays.forEach((answer, index) => {
      expect(answer.status, answer.text).toBe(201)
      expect(answer.headers.get('idempotent-replayed')).toBe('true')
      expect(answer.headers.get('original-request')).toBe(
        firsts[index]?.headers.get('x-request-id'),
      )
      expect(answer.text).toBe(firsts[index]?.text)
    })
    expect(server.claims()).toBe(ACCOUNTS)

    for (const [index, account] of accounts.entries()) {
      const mine = (await listSubscriptions(server.url, account.apiKey)).filter(
        (sub) => sub.datastream_id === datastream,
      )
      expect(mine.map((sub) => sub.id)).toEqual([ids[index]])
    }
  })

  it('never answers 409 mismatch for a key another account used with another body', async () => {
    const key = newKey()
    const answers = await Promise.all(
      accounts.map((account, index) => subscribe(account.apiKey, key, 100 + index)),
    )
    for (const answer of answers) expect(answer.status, answer.text).toBe(201)
    expect(server.counter('conflicts', { reason: 'mismatch' })).toBe(0)
    for (const [index, account] of accounts.entries()) {
      const mine = await listSubscriptions(server.url, account.apiKey)
      expect(
        mine.filter((sub) => sub.datastream_id >= 100).map((sub) => sub.datastream_id),
      ).toEqual([100 + index])
    }
    // Within one account the key is taken: another body is the mismatch.
    const reused = await subscribe(accounts[0]?.apiKey ?? '', key, 300)
    expect(reused.status).toBe(409)
    expect(server.counter('conflicts', { reason: 'mismatch' })).toBe(1)
  })

  it('keeps every account’s records apart in the store: one row per account for the shared key', async () => {
    const key = newKey()
    await Promise.all(accounts.map((account) => subscribe(account.apiKey, key, 400)))
    const rows = await server.query<{ scope: string }>(
      'SELECT scope FROM idempotency_records WHERE key = ?',
      [key],
    )
    expect(rows).toHaveLength(ACCOUNTS)
    expect(new Set(rows.map((row) => row.scope)).size).toBe(ACCOUNTS)
  })
})
