import { createSubscription, subscriptionsTo } from '../api/ticksupply-api.js'
import type { Check } from './check.js'
import {
  KEY_FORMAT_MESSAGE,
  expectCount,
  expectError,
  expectKeyFormatError,
  expectMismatch,
  expectNotReplayed,
  expectStatus,
  fail,
} from './expect.js'
import { describeReply } from '../api/describe-reply.js'

const ORDER = 'Order of checks'
const WRONG_API_KEY = 'conformance-no-such-api-key-0000'

export const orderChecks: readonly Check[] = [
  {
    id: 'order.auth-before-key-format',
    title: 'Authentication comes before the key format: 401, not 400',
    clause: `${ORDER}: "1. authentication (401) and authorisation (403) ... 3. key format (400)"`,
    async run({ account, takeDatastream }) {
      const datastreamId = takeDatastream()
      for (const apiKey of [WRONG_API_KEY, null]) {
        const reply = await account.send(
          createSubscription(datastreamId, { key: 'not-a-uuid', apiKey }),
        )
        expectError(
          reply,
          { status: 401, code: 'unauthenticated' },
          `a malformed key with ${apiKey === null ? 'no API key' : 'an unknown API key'}`,
        )
      }
    },
  },
  {
    id: 'order.key-format-before-validation',
    title: 'The key format comes before body validation',
    clause: `${ORDER}: "3. key format (400) 4. request validation: malformed JSON, schema violations (400)"`,
    async run({ account, takeDatastream }) {
      const bodies = [
        { name: 'malformed JSON', rawBody: '{"datastream_id": ' },
        { name: 'a schema violation', rawBody: '{"datastream_id": "one"}' },
        { name: 'a valid body', rawBody: JSON.stringify({ datastream_id: takeDatastream() }) },
      ]
      for (const body of bodies) {
        const reply = await account.send({
          method: 'POST',
          path: '/v1/subscriptions',
          rawBody: body.rawBody,
          key: 'not-a-uuid',
        })
        expectKeyFormatError(reply, `a malformed key with ${body.name}`)
      }
    },
  },
  {
    id: 'order.rejections-use-no-key',
    title: 'A 401 or a 400 before the claim does not use the key up',
    clause: `${ORDER}: "Nothing before step 5 stores anything or uses up the key: a client that fixes its request ... may retry with the same key"`,
    async run({ account, newKey, takeDatastream }) {
      const key = newKey()
      const datastreamId = takeDatastream()
      const rejected = [
        {
          what: 'the key with an unknown API key',
          reply: await account.send(
            createSubscription(datastreamId, { key, apiKey: WRONG_API_KEY }),
          ),
          status: 401,
        },
        {
          what: 'the key with malformed JSON',
          reply: await account.send({
            method: 'POST',
            path: '/v1/subscriptions',
            rawBody: '{',
            key,
          }),
          status: 400,
        },
        {
          what: 'the key with a schema violation',
          reply: await account.send({
            method: 'POST',
            path: '/v1/subscriptions',
            json: { datastream_id: 'one' },
            key,
          }),
          status: 400,
        },
      ]
      for (const { what, reply, status } of rejected) {
        expectStatus(reply, status, what)
        if (status === 400 && reply.text.includes(KEY_FORMAT_MESSAGE)) {
          fail(`a validation error for ${what}, not the key-format error`, describeReply(reply))
        }
      }
      const fixed = await account.send(createSubscription(datastreamId, { key }))
      expectStatus(fixed, 201, 'the fixed request under the same key')
      expectNotReplayed(fixed, 'the fixed request')
      // The key is used up by the fixed request, and only by it.
      expectMismatch(
        await account.send(createSubscription(takeDatastream(), { key })),
        'another body under the key after the fixed request',
      )
      expectCount((await subscriptionsTo(account, datastreamId)).length, 1, 'subscription created')
    },
  },
]
