import type { Subscription } from '../../types.js'
import type { Command } from '../command.js'
import { formatDetails, formatTable } from '../format-table.js'
import { MAX_OPTION, collect, maxItems } from '../collect.js'
import { expectFields, expectRows } from '../expect-fields.js'
import { optionalInteger, requiredInt64 } from '../option-values.js'

/** The fields the views read. */
const FIELDS = [
  'id',
  'status',
  'datastream_id',
  'datastream.exchange',
  'datastream.instrument',
  'datastream.stream_type',
  'created_at',
]

function details(subscription: Subscription): string {
  expectFields(subscription, 'a subscription', FIELDS)
  const { datastream } = subscription
  return formatDetails([
    ['ID', subscription.id],
    ['Status', subscription.status],
    ['Datastream', String(subscription.datastream_id)],
    ['Stream', `${datastream.exchange} ${datastream.instrument} ${datastream.stream_type}`],
    ['Created', subscription.created_at],
  ])
}

/** The commands that change a subscription and answer nothing (204). */
function change(verb: 'pause' | 'resume' | 'delete', summary: string, done: string): Command {
  return {
    summary,
    positionals: ['ID'],
    mutation: true,
    async run({ client, positionals, mutation, print }) {
      const [id = ''] = positionals
      await client.subscriptions[verb](id, mutation)
      print({ id, result: verb === 'delete' ? 'deleted' : `${verb}d` }, () => `${done} ${id}`)
      return undefined
    },
  }
}

export const subscriptionCommands: Readonly<Record<string, Command>> = {
  create: {
    summary: 'Subscribe to a datastream (starts recording now)',
    options: {
      datastream: { type: 'string', placeholder: 'N', description: 'the datastream ID (required)' },
    },
    mutation: true,
    async run({ client, options, mutation, print }) {
      const datastream_id = requiredInt64(options, 'datastream')
      const subscription = await client.subscriptions.create({ datastream_id }, mutation)
      print(subscription, () => details(subscription))
      return undefined
    },
  },
  list: {
    summary: 'List the active and paused subscriptions, newest first',
    options: {
      limit: { type: 'string', placeholder: 'N', description: 'items per request' },
      max: MAX_OPTION,
    },
    async run({ client, options, call, print }) {
      const limit = optionalInteger(options, 'limit')
      const subscriptions: Subscription[] = await collect(
        client.subscriptions.iterate(limit === undefined ? {} : { limit }, call),
        maxItems(options),
      )
      print(subscriptions, () =>
        formatTable(expectRows(subscriptions, 'a list of subscriptions', FIELDS), [
          { header: 'ID', value: (row) => row.id },
          { header: 'STATUS', value: (row) => row.status },
          { header: 'DATASTREAM', value: (row) => String(row.datastream_id) },
          { header: 'EXCHANGE', value: (row) => row.datastream.exchange },
          { header: 'INSTRUMENT', value: (row) => row.datastream.instrument },
          { header: 'STREAM TYPE', value: (row) => row.datastream.stream_type },
          { header: 'CREATED', value: (row) => row.created_at },
        ]),
      )
      return undefined
    },
  },
  get: {
    summary: 'Show one subscription (deleted ones too)',
    positionals: ['ID'],
    async run({ client, positionals, call, print }) {
      const subscription = await client.subscriptions.get(positionals[0] ?? '', call)
      print(subscription, () => details(subscription))
      return undefined
    },
  },
  pause: change('pause', 'Pause recording (closes the open span)', 'Paused'),
  resume: change('resume', 'Resume recording (opens a span)', 'Resumed'),
  delete: change('delete', 'Delete a subscription and its spans', 'Deleted'),
  spans: {
    summary: 'List the periods a subscription recorded, oldest first',
    positionals: ['ID'],
    async run({ client, positionals, call, print }) {
      const spans = await client.subscriptions.spans(positionals[0] ?? '', call)
      print(spans, () =>
        formatTable(expectRows(spans, 'a list of spans', ['id', 'started_at']), [
          { header: 'ID', value: (row) => row.id },
          { header: 'STARTED', value: (row) => row.started_at },
          { header: 'ENDED', value: (row) => row.ended_at ?? '(recording)' },
        ]),
      )
      return undefined
    },
  },
}
