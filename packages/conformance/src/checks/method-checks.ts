import { describeReply } from '../api/describe-reply.js'
import { createExportSchema, draftColumn, jsonOf, setUp, subscribe } from '../api/ticksupply-api.js'
import type { Subscription } from '../api/ticksupply-api.js'
import type { HttpReply } from '../http/http-client.js'
import type { Check } from './check.js'
import { expectNotReplayed, expectStatus, fail } from './expect.js'

const WHERE = 'Where the header counts'

function expectIgnored(reply: HttpReply, status: number, what: string): void {
  expectStatus(reply, status, what)
  expectNotReplayed(reply, what)
}

export const methodChecks: readonly Check[] = [
  {
    id: 'methods.put-ignores-key',
    title: 'PUT ignores Idempotency-Key completely: not validated, nothing stored',
    clause: `${WHERE}: "PUT: ignored completely: not validated, nothing stored (the resource is replaced on every call by design)"`,
    async run({ account, newKey, trackExportSchema, uniqueName }) {
      const created = await setUp(account, createExportSchema(uniqueName()), 201)
      const schema = jsonOf<{ id: string }>(created, 'the created export schema')
      trackExportSchema(account, schema.id)
      const draftPath = `/v1/export-schemas/${schema.id}/draft`
      await setUp(account, { method: 'POST', path: draftPath }, 201)
      const put = (column: string, key: string | readonly string[]) =>
        account.send({
          method: 'PUT',
          path: draftPath,
          json: { columns: [draftColumn(column)] },
          key,
        })
      expectIgnored(await put('malformed', 'not-a-uuid'), 200, 'a PUT with the key "not-a-uuid"')
      expectIgnored(await put('repeated', [newKey(), newKey()]), 200, 'a PUT with two key lines')
      const key = newKey()
      expectIgnored(await put('first', key), 200, 'a PUT under a key')
      expectIgnored(await put('second', key), 200, 'another PUT body under the same key')
      const draft = await account.send({ method: 'GET', path: draftPath })
      expectStatus(draft, 200, `GET ${draftPath}`)
      const columns = jsonOf<{ columns?: { output_column?: unknown }[] }>(
        draft,
        'the draft',
      ).columns
      if (columns?.[0]?.output_column !== 'second') {
        fail(
          'the draft to hold the last PUT\'s column "second" (every PUT ran)',
          describeReply(draft),
        )
      }
    },
  },
  {
    id: 'methods.get-ignores-key',
    title: 'GET ignores Idempotency-Key completely, even a malformed one',
    clause: `${WHERE}: "GET, HEAD, OPTIONS, PATCH: ignored completely"`,
    async run({ account, newKey, takeDatastream }) {
      expectIgnored(
        await account.send({ method: 'GET', path: '/v1/subscriptions', key: 'not-a-uuid' }),
        200,
        'GET /v1/subscriptions with the key "not-a-uuid"',
      )
      expectIgnored(
        await account.send({ method: 'GET', path: '/v1/subscriptions', key: [newKey(), newKey()] }),
        200,
        'GET /v1/subscriptions with two key lines',
      )
      const subscription = await subscribe(account, takeDatastream())
      const path = `/v1/subscriptions/${subscription.id}`
      const key = newKey()
      const before = await account.send({ method: 'GET', path, key })
      expectIgnored(before, 200, `a keyed GET ${path}`)
      await setUp(account, { method: 'POST', path: `${path}/pause` }, 204)
      const after = await account.send({ method: 'GET', path, key })
      expectIgnored(after, 200, `the same keyed GET after a pause`)
      const status = jsonOf<Subscription>(after, 'the subscription').status
      if (status !== 'paused') {
        fail('the second GET to show the pause (a GET is never replayed)', describeReply(after))
      }
    },
  },
]
