import { describeReply } from '../api/describe-reply.js'
import { createSubscription, setUp, subscribe, subscriptionsTo } from '../api/ticksupply-api.js'
import type { AccountClient } from '../api/account-client.js'
import type { HttpReply } from '../http/http-client.js'
import type { Check } from './check.js'
import {
  expectCount,
  expectKeyFormatError,
  expectMismatch,
  expectReplayOf,
  expectStatus,
  fail,
} from './expect.js'
import { nearMissesOf, spellingsOf } from './key-forms.js'

const KEY_SECTION = 'The key'

/** Sends each bad key on a create and expects the format error, then that nothing ran. */
async function expectAllRefused(
  account: AccountClient,
  datastreamId: number,
  keys: readonly { name: string; value: string | readonly string[] }[],
): Promise<void> {
  const refusedWrongly: string[] = []
  for (const key of keys) {
    const reply = await account.send(createSubscription(datastreamId, { key: key.value }))
    try {
      expectKeyFormatError(reply, key.name)
    } catch {
      refusedWrongly.push(`${key.name}: ${describeReply(reply)}`)
    }
  }
  if (refusedWrongly.length > 0) {
    fail(
      `400 invalid_argument "Invalid idempotency key format" for every one of ${String(keys.length)} keys`,
      refusedWrongly.join(' | '),
    )
  }
  const created = await subscriptionsTo(account, datastreamId)
  expectCount(
    created.length,
    0,
    'subscriptions after requests refused for their key (nothing runs)',
  )
}

export const keyChecks: readonly Check[] = [
  {
    id: 'key.forms-accepted',
    title: 'Each of the four UUID forms is accepted, in any letter case',
    clause: `${KEY_SECTION}: "it must parse as a UUID in one of four forms, hex digits in any letter case" (hyphenated, simple, braced, URN)`,
    async run({ account, newKey, takeDatastream }) {
      const refused: string[] = []
      const count = spellingsOf(newKey()).length
      for (let i = 0; i < count; i++) {
        // A fresh UUID each time: the spellings of one UUID are one key.
        const spelling = spellingsOf(newKey())[i]
        if (spelling === undefined) continue
        const reply = await account.send(
          createSubscription(takeDatastream(), { key: spelling.value }),
        )
        if (reply.status !== 201) refused.push(`${spelling.name}: ${describeReply(reply)}`)
      }
      if (refused.length > 0)
        fail('201 for a create under each spelling of a key', refused.join(' | '))
    },
  },
  {
    id: 'key.canonical-equality',
    title: 'All spellings of one UUID are one key',
    clause: `${KEY_SECTION}: "the four forms and any letter case of one UUID are the same key"`,
    async run({ account, newKey, takeDatastream }) {
      const datastreamId = takeDatastream()
      const [first, ...others] = spellingsOf(newKey())
      if (first === undefined) return
      const original = await account.send(createSubscription(datastreamId, { key: first.value }))
      expectStatus(original, 201, 'the first create')
      for (const spelling of others) {
        const again = await account.send(createSubscription(datastreamId, { key: spelling.value }))
        expectReplayOf(again, original, `the same create under the key spelled ${spelling.name}`)
      }
      // The other spellings found the first one's record: another body under one of them is the
      // mismatch, not a new operation.
      const last = others.at(-1) ?? first
      const other = await account.send(createSubscription(takeDatastream(), { key: last.value }))
      expectMismatch(other, `another body under the key spelled ${last.name}`)
      const created = await subscriptionsTo(account, datastreamId)
      expectCount(created.length, 1, 'subscription to the datastream after all the spellings')
    },
  },
  {
    id: 'key.near-misses-rejected',
    title: 'Values that are almost a UUID are refused with 400, and nothing runs',
    clause: `${KEY_SECTION}: "Format error: 400 with {"error":{"code":"invalid_argument","message":"Invalid idempotency key format"}} and nothing runs"`,
    async run({ account, newKey, takeDatastream }) {
      await expectAllRefused(account, takeDatastream(), nearMissesOf(newKey()))
    },
  },
  {
    id: 'key.repeated-header-rejected',
    title: 'Two Idempotency-Key lines are a format error, even when they agree',
    clause: `${KEY_SECTION}: "Exactly one Idempotency-Key header. Two or more header lines ... are a format error"`,
    async run({ account, newKey, takeDatastream }) {
      const key = newKey()
      await expectAllRefused(account, takeDatastream(), [
        { name: 'the same key on two lines', value: [key, key] },
        { name: 'two different keys on two lines', value: [key, newKey()] },
        { name: 'a key and an empty line', value: [key, ''] },
      ])
    },
  },
  {
    id: 'key.empty-rejected',
    title: 'An empty Idempotency-Key is a format error',
    clause: `${KEY_SECTION}: "Two or more header lines, or an empty value, are a format error"`,
    async run({ account, takeDatastream }) {
      await expectAllRefused(account, takeDatastream(), [
        { name: 'an empty value', value: '' },
        { name: 'only spaces', value: '   ' },
      ])
    },
  },
  {
    id: 'key.too-long-rejected',
    title: 'A key longer than 128 characters is a format error',
    clause: `${KEY_SECTION}: "At most 128 characters"`,
    async run({ account, newKey, takeDatastream }) {
      const uuid = newKey()
      await expectAllRefused(account, takeDatastream(), [
        { name: '129 characters', value: 'a'.repeat(129) },
        { name: 'a UUID repeated to 148 characters', value: uuid.repeat(4).slice(0, 148) },
        { name: '4,000 characters', value: 'f'.repeat(4000) },
      ])
    },
  },
  {
    id: 'key.rejected-on-delete',
    title: 'A DELETE with a malformed key is refused and deletes nothing',
    clause: `Where the header counts: "POST, DELETE (every /v1 endpoint): honoured"; ${KEY_SECTION}: "Format error: 400 ... and nothing runs"`,
    async run({ account, newKey, takeDatastream }) {
      const subscription = await subscribe(account, takeDatastream())
      const refused: HttpReply = await account.send({
        method: 'DELETE',
        path: `/v1/subscriptions/${subscription.id}`,
        key: 'not-a-uuid',
      })
      expectKeyFormatError(refused, 'a DELETE with the key "not-a-uuid"')
      const still = await subscriptionsTo(account, subscription.datastream_id)
      expectCount(
        still.length,
        1,
        'listed subscription after the refused DELETE (nothing was deleted)',
      )
      // The same DELETE with a well-formed key does delete it: the refusal was about the key.
      await setUp(
        account,
        { method: 'DELETE', path: `/v1/subscriptions/${subscription.id}`, key: newKey() },
        204,
      )
      expectCount(
        (await subscriptionsTo(account, subscription.datastream_id)).length,
        0,
        'listed subscriptions after the DELETE under a well-formed key',
      )
    },
  },
]
