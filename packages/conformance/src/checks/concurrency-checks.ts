import type { AccountClient } from '../api/account-client.js'
import { describeReply } from '../api/describe-reply.js'
import { createSubscription, subscriptionsTo } from '../api/ticksupply-api.js'
import type { HttpReply } from '../http/http-client.js'
import type { Check } from './check.js'
import { expectCount, fail, isInProgress, isReplay, replayDifferences } from './expect.js'
import { spellingsOf } from './key-forms.js'

/**
 * Sends one create per key spelling at once (all spellings of one UUID) and holds the answers
 * to the contract: one of them ran the operation, every other one is its replay or the "still
 * in progress" 409, and the account has one subscription to the datastream.
 */
async function expectRunOnce(
  account: AccountClient,
  datastreamId: number,
  keys: readonly string[],
): Promise<void> {
  const replies = await Promise.all(
    keys.map((key) => account.send(createSubscription(datastreamId, { key }))),
  )
  const originals = replies.filter((reply) => !isReplay(reply) && !isInProgress(reply))
  const [original] = originals
  if (originals.length !== 1 || original === undefined || original.status !== 201) {
    fail(
      `exactly one 201 that ran the operation among ${String(keys.length)} concurrent identical requests, the rest replays or 409 "still in progress"`,
      `${String(originals.length)} answers not replayed: ${originals.map(describeReply).join(' | ')}`,
    )
  }
  const wrong: HttpReply[] = replies.filter(
    (reply) =>
      reply !== original && isReplay(reply) && replayDifferences(reply, original).length > 0,
  )
  if (wrong.length > 0) {
    fail(
      'every replay to carry the original 201, byte for byte, naming its request',
      wrong
        .map((reply) => `${replayDifferences(reply, original).join('; ')}: ${describeReply(reply)}`)
        .join(' | '),
    )
  }
  expectCount(
    (await subscriptionsTo(account, datastreamId)).length,
    1,
    'subscription to the datastream after the concurrent requests',
  )
}

export const concurrencyChecks: readonly Check[] = [
  {
    id: 'concurrency.identical-requests-run-once',
    title: 'Concurrent identical requests run the operation once',
    clause:
      'What a repeated key gets: "in progress, same: wait"; "completed, same: the stored response, replayed" (the claim is atomic: one request runs)',
    async run({ account, concurrency, newKey, takeDatastream }) {
      const key = newKey()
      await expectRunOnce(
        account,
        takeDatastream(),
        Array.from({ length: concurrency }, () => key),
      )
    },
  },
  {
    id: 'concurrency.spellings-run-once',
    title: 'Concurrent requests under different spellings of one key run the operation once',
    clause: 'The key: "the four forms and any letter case of one UUID are the same key"',
    async run({ account, concurrency, newKey, takeDatastream }) {
      const spellings = spellingsOf(newKey())
      const keys = Array.from(
        { length: concurrency },
        (_, i) => spellings[i % spellings.length]?.value ?? '',
      )
      await expectRunOnce(account, takeDatastream(), keys)
    },
  },
]
