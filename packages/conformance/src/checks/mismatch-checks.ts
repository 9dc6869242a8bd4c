import { describeReply } from '../api/describe-reply.js'
import {
  createExportSchema,
  createSubscription,
  getSubscription,
  jsonOf,
  setUp,
  subscribe,
  subscriptionsTo,
} from '../api/ticksupply-api.js'
import type { Check } from './check.js'
import { expectCount, expectMismatch, expectReplayOf, expectStatus, fail } from './expect.js'

const MISMATCH = `What a repeated key gets: "any state, differs: 409 already_exists, message Idempotency key reused with different request parameters"`
const FINGERPRINT =
  'Fingerprint: "a SHA-256 digest over its method, its path with the query string exactly as sent, and its raw body bytes"'

export const mismatchChecks: readonly Check[] = [
  {
    id: 'mismatch.body',
    title: 'The same key with another body is a 409, runs nothing, and is not stored',
    clause: `${MISMATCH}; "a conflict answer (either 409) is never stored"`,
    async run({ account, newKey, takeDatastream }) {
      const key = newKey()
      const datastreamId = takeDatastream()
      const original = await account.send(createSubscription(datastreamId, { key }))
      expectStatus(original, 201, 'the first keyed create')
      const otherDatastream = takeDatastream()
      expectMismatch(
        await account.send(createSubscription(otherDatastream, { key })),
        'the same key with another datastream in the body',
      )
      // The same JSON value in other bytes is another body: the fingerprint is over raw bytes.
      expectMismatch(
        await account.send({
          method: 'POST',
          path: '/v1/subscriptions',
          rawBody: `{ "datastream_id": ${String(datastreamId)} }`,
          key,
        }),
        'the same key with the same JSON written with spaces',
      )
      // And so is the same JSON with a line break after it: no byte is trimmed away.
      expectMismatch(
        await account.send({
          method: 'POST',
          path: '/v1/subscriptions',
          rawBody: `${JSON.stringify({ datastream_id: datastreamId })}\n`,
          key,
        }),
        'the same key with the same JSON and a trailing line break',
      )
      expectCount(
        (await subscriptionsTo(account, otherDatastream)).length,
        0,
        'subscriptions to the other datastream (the mismatched request ran nothing)',
      )
      expectReplayOf(
        await account.send(createSubscription(datastreamId, { key })),
        original,
        'the original request after the conflicts',
      )
    },
  },
  {
    id: 'mismatch.path',
    title: 'The same key on another path, or with another query string, is a 409',
    clause: `${MISMATCH}; ${FINGERPRINT}`,
    async run({ account, newKey, takeDatastream }) {
      const subscription = await subscribe(account, takeDatastream())
      const key = newKey()
      const base = `/v1/subscriptions/${subscription.id}`
      const paused = await account.send({ method: 'POST', path: `${base}/pause`, key })
      expectStatus(paused, 204, 'the keyed pause')
      expectMismatch(
        await account.send({ method: 'POST', path: `${base}/resume`, key }),
        'a resume under the key of the pause',
      )
      const after = await getSubscription(account, subscription.id)
      if (after.status !== 'paused') {
        fail('the subscription to stay paused (the resume did not run)', `status "${after.status}"`)
      }
      const withQuery = await account.send({
        method: 'POST',
        path: `${base}/pause?conformance=1`,
        key,
      })
      expectMismatch(withQuery, 'the same pause with a query string added')

      // The query string counts exactly as sent: neither the order of its parameters nor the
      // spelling of its bytes is normalised away.
      const queried = newKey()
      const ordered = await account.send({
        method: 'POST',
        path: `${base}/pause?conformance=1&order=2`,
        key: queried,
      })
      expectStatus(ordered, 204, 'a keyed pause with the query string conformance=1&order=2')
      expectMismatch(
        await account.send({
          method: 'POST',
          path: `${base}/pause?order=2&conformance=1`,
          key: queried,
        }),
        'the same pause with its query parameters in the other order',
      )
      expectMismatch(
        await account.send({
          method: 'POST',
          path: `${base}/pause?conformance=%31&order=2`,
          key: queried,
        }),
        'the same pause with a query byte percent-encoded (%31 for 1)',
      )
    },
  },
  {
    id: 'mismatch.method',
    title: 'The same key with another method on the same path is a 409 and runs nothing',
    clause: `${MISMATCH}; ${FINGERPRINT}`,
    async run({ account, newKey, trackExportSchema, uniqueName }) {
      const created = await setUp(account, createExportSchema(uniqueName()), 201)
      const schema = jsonOf<{ id: string }>(created, 'the created export schema')
      trackExportSchema(account, schema.id)
      const draftPath = `/v1/export-schemas/${schema.id}/draft`
      const key = newKey()
      const drafted = await account.send({ method: 'POST', path: draftPath, key })
      expectStatus(drafted, 201, `a keyed POST ${draftPath}`)
      expectMismatch(
        await account.send({ method: 'DELETE', path: draftPath, key }),
        `a DELETE ${draftPath} under the key of the POST`,
      )
      const draft = await account.send({ method: 'GET', path: draftPath })
      if (draft.status !== 200) {
        fail('the draft to still exist (200 for GET): the DELETE did not run', describeReply(draft))
      }
    },
  },
]
