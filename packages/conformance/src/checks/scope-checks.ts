import { createSubscription, jsonOf, subscriptionsTo } from '../api/ticksupply-api.js'
import type { Subscription } from '../api/ticksupply-api.js'
import type { Check } from './check.js'
import { expectCount, expectNotReplayed, expectReplayOf, expectStatus, fail } from './expect.js'

const SCOPE = 'Scope'

export const scopeChecks: readonly Check[] = [
  {
    id: 'scope.accounts-apart',
    title: "Another account's use of the same key runs on its own",
    clause: `${SCOPE}: "two accounts never see each other's records, even with the same key"`,
    requires: ['other-account'],
    async run({ account, otherAccount, newKey, takeDatastream }) {
      const key = newKey()
      const datastreamId = takeDatastream()
      const mine = await account.send(createSubscription(datastreamId, { key }))
      expectStatus(mine, 201, "the first account's keyed create")
      const theirs = await otherAccount.send(createSubscription(datastreamId, { key }))
      expectStatus(theirs, 201, "the other account's create with the same key and body")
      expectNotReplayed(theirs, "the other account's create")
      const mineId = jsonOf<Subscription>(mine, 'the subscription').id
      const theirsId = jsonOf<Subscription>(theirs, 'the subscription').id
      if (mineId === theirsId) {
        fail('two subscriptions, one per account', `both answers name ${mineId}`)
      }
      // Another body under a key the first account used is no conflict for the other account.
      const shared = newKey()
      expectStatus(
        await account.send(createSubscription(takeDatastream(), { key: shared })),
        201,
        "the first account's create under a second key",
      )
      const otherBody = await otherAccount.send(
        createSubscription(takeDatastream(), { key: shared }),
      )
      expectStatus(
        otherBody,
        201,
        "the other account's create of another datastream under that key",
      )
      expectNotReplayed(otherBody, "the other account's create of another datastream")
      expectCount(
        (await subscriptionsTo(account, datastreamId)).length,
        1,
        'subscription of the first account to the datastream',
      )
      expectCount(
        (await subscriptionsTo(otherAccount, datastreamId)).length,
        1,
        'subscription of the other account to the datastream',
      )
    },
  },
  {
    id: 'scope.keys-of-one-account-shared',
    title: 'Two API keys of one account share their idempotency keys',
    clause: `${SCOPE}: "Keys belong to the authenticated account, not to the API key: two API keys of one account share their idempotency keys"`,
    requires: ['same-account-key'],
    async run({ account, sameAccountKey, newKey, takeDatastream }) {
      const request = createSubscription(takeDatastream(), { key: newKey() })
      const original = await account.send(request)
      expectStatus(original, 201, 'the keyed create with the first API key')
      expectReplayOf(
        await sameAccountKey.send(request),
        original,
        'the same request with the second API key',
      )
    },
  },
]
