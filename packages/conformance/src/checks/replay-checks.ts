import {
  createSubscription,
  getSubscription,
  jsonOf,
  setUp,
  subscribe,
  subscriptionsTo,
} from '../api/ticksupply-api.js'
import type { Subscription } from '../api/ticksupply-api.js'
import type { Check } from './check.js'
import {
  expectCount,
  expectError,
  expectNotReplayed,
  expectReplayOf,
  expectStatus,
  fail,
} from './expect.js'

const REPEATED = 'What a repeated key gets'
const STORED = 'What is stored'

/** A subscription id that is well-formed and belongs to nobody. */
const NOBODYS_SUBSCRIPTION = `sub_${'0'.repeat(32)}`

export const replayChecks: readonly Check[] = [
  {
    id: 'replay.fidelity',
    title: 'A replay has the original status, body bytes and headers, and the replay headers',
    clause: `${REPEATED}: "A replay has the stored status code and the stored body, byte for byte, with the stored Content-Type (and Location, where there was one), and adds the headers Idempotent-Replayed: true and Original-Request: <X-Request-Id of the request that produced the response>. Its own X-Request-Id is the new request's."`,
    async run({ account, newKey, takeDatastream }) {
      const request = createSubscription(takeDatastream(), { key: newKey() })
      const original = await account.send(request)
      expectStatus(original, 201, 'the first keyed create')
      expectNotReplayed(original, 'the first keyed create')
      const second = await account.send(request)
      expectReplayOf(second, original, 'the second identical request')
      const third = await account.send(request)
      // A replay never rewrites the record: the third still names the first request.
      expectReplayOf(third, original, 'the third identical request')
    },
  },
  {
    id: 'replay.headers-do-not-count',
    title: 'The same key, method, path and body with other headers is a replay',
    clause: `Fingerprint: "a SHA-256 digest over its method, its path with the query string exactly as sent, and its raw body bytes. Headers do not count."`,
    async run({ account, newKey, takeDatastream }) {
      const request = createSubscription(takeDatastream(), { key: newKey() })
      const original = await account.send(request)
      expectStatus(original, 201, 'the first keyed create')
      const otherHeaders = await account.send({
        ...request,
        headers: [
          ['Content-Type', 'application/json; charset=utf-8'],
          ['Accept', 'application/json'],
          ['User-Agent', 'ticksupply-conformance-retry/1'],
        ],
      })
      expectReplayOf(
        otherHeaders,
        original,
        'the same create with another Content-Type spelling, Accept and User-Agent',
      )
    },
  },
  {
    id: 'replay.no-content',
    title: 'A 204 is replayed as a 204 with no body and the replay headers',
    clause: `${REPEATED}: "completed, same: the stored response, replayed"`,
    async run({ account, newKey, takeDatastream }) {
      const subscription = await subscribe(account, takeDatastream())
      const pause = {
        method: 'POST',
        path: `/v1/subscriptions/${subscription.id}/pause`,
        key: newKey(),
      }
      const original = await account.send(pause)
      expectStatus(original, 204, 'the first keyed pause')
      expectReplayOf(await account.send(pause), original, 'the same pause again')
      const remove = {
        method: 'DELETE',
        path: `/v1/subscriptions/${subscription.id}`,
        key: newKey(),
      }
      const deleted = await account.send(remove)
      expectStatus(deleted, 204, 'the first keyed DELETE')
      expectReplayOf(await account.send(remove), deleted, 'the same DELETE again')
    },
  },
  {
    id: 'replay.runs-nothing',
    title: 'A replay does not run the operation again, even when it would now answer otherwise',
    clause: `${REPEATED}: "completed, same: the stored response, replayed"; "A replay never rewrites the record"`,
    async run({ account, newKey, takeDatastream }) {
      const datastreamId = takeDatastream()
      const request = createSubscription(datastreamId, { key: newKey() })
      const original = await account.send(request)
      expectStatus(original, 201, 'the keyed create')
      const created = jsonOf<Subscription>(original, 'the created subscription')
      await setUp(account, { method: 'DELETE', path: `/v1/subscriptions/${created.id}` }, 204)
      // Run again, the create would bring the deleted subscription back (api.md: "A deleted one
      // exists: it is reused"); the replay must not.
      expectReplayOf(await account.send(request), original, 'the create again after a DELETE')
      const after = await getSubscription(account, created.id)
      if (after.status !== 'deleted') {
        fail(
          'the subscription to stay deleted after the replay (the create did not run again)',
          `status "${after.status}"`,
        )
      }
    },
  },
  {
    id: 'replay.operation-errors-stored',
    title: "The operation's own errors (404, 409) are stored and replayed",
    clause: `${STORED}: "A response with a status below 500 that the operation produced is stored and replayed for the life of the key, errors included (a 404 for an unknown datastream replays as that 404)"`,
    async run({ account, newKey, takeDatastream, unknownDatastreamId }) {
      const unknown = createSubscription(unknownDatastreamId, { key: newKey() })
      const notFound = await account.send(unknown)
      expectError(
        notFound,
        { status: 404, code: 'not_found' },
        'a create for an unknown datastream',
      )
      expectReplayOf(await account.send(unknown), notFound, 'the same create again')

      // A 409 for an existing subscription is the operation's answer too, and stays the answer
      // after the subscription is gone.
      const datastreamId = takeDatastream()
      const existing = await subscribe(account, datastreamId)
      const duplicate = createSubscription(datastreamId, { key: newKey() })
      const conflict = await account.send(duplicate)
      expectError(
        conflict,
        { status: 409, code: 'already_exists' },
        'a keyed create for a datastream already subscribed',
      )
      await setUp(account, { method: 'DELETE', path: `/v1/subscriptions/${existing.id}` }, 204)
      expectReplayOf(await account.send(duplicate), conflict, 'the same create after the DELETE')
      const listed = await subscriptionsTo(account, datastreamId)
      expectCount(listed.length, 0, 'listed subscriptions after the replayed 409 (nothing ran)')
    },
  },
  {
    id: 'replay.path-404-stored',
    title: 'A 404 for an unknown id in the path is stored and replayed',
    clause: `${STORED}: "A 404 for an unknown or malformed resource ID in the path is the operation's outcome (step 5), so it is stored and replayed"`,
    async run({ account, newKey }) {
      for (const id of [NOBODYS_SUBSCRIPTION, 'not-an-id']) {
        const pause = { method: 'POST', path: `/v1/subscriptions/${id}/pause`, key: newKey() }
        const notFound = await account.send(pause)
        expectError(notFound, { status: 404, code: 'not_found' }, `a keyed pause of ${id}`)
        expectReplayOf(await account.send(pause), notFound, `the same pause of ${id} again`)
      }
    },
  },
]
