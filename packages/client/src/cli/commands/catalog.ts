import type { Datastream, Instrument, StreamTypeInput } from '../../types.js'
import type { Command } from '../command.js'
import { formatTable } from '../format-table.js'
import { MAX_OPTION, collect, maxItems } from '../collect.js'
import { expectRows } from '../expect-fields.js'
import { optionalInteger, optionalString, requiredString } from '../option-values.js'
import { UsageError } from '../usage-error.js'

const STREAM_TYPES: readonly StreamTypeInput[] = [
  'trade',
  'trades',
  'orderbook',
  'book_update',
  'quote',
  'kline',
  'ticker',
  'liquidation',
]

const pageSize = {
  type: 'string',
  placeholder: 'N',
  description: 'items per request',
} as const

export const exchangeCommands: Readonly<Record<string, Command>> = {
  list: {
    summary: 'List the exchanges of the catalog',
    async run({ client, call, print }) {
      const exchanges = await client.exchanges.list(call)
      print(exchanges, () =>
        formatTable(expectRows(exchanges, 'a list of exchanges', ['code', 'display_name']), [
          { header: 'CODE', value: (row) => row.code },
          { header: 'NAME', value: (row) => row.display_name },
        ]),
      )
      return undefined
    },
  },
}

export const instrumentCommands: Readonly<Record<string, Command>> = {
  list: {
    summary: 'List the instruments of an exchange',
    options: {
      exchange: { type: 'string', placeholder: 'CODE', description: 'the exchange (required)' },
      search: { type: 'string', placeholder: 'PREFIX', description: 'symbol prefix, any case' },
      limit: pageSize,
      max: MAX_OPTION,
    },
    async run({ client, options, call, print }) {
      const exchange = requiredString(options, 'exchange')
      const search = optionalString(options, 'search')
      const limit = optionalInteger(options, 'limit')
      const params = {
        ...(search === undefined ? {} : { search }),
        ...(limit === undefined ? {} : { limit }),
      }
      const instruments: Instrument[] = await collect(
        client.instruments.iterate(exchange, params, call),
        maxItems(options),
      )
      print(instruments, () =>
        formatTable(
          expectRows(instruments, 'a list of instruments', [
            'symbol',
            'base',
            'quote',
            'instrument_type',
          ]),
          [
            { header: 'SYMBOL', value: (row) => row.symbol },
            { header: 'BASE', value: (row) => row.base },
            { header: 'QUOTE', value: (row) => row.quote },
            { header: 'TYPE', value: (row) => row.instrument_type },
          ],
        ),
      )
      return undefined
    },
  },
}

export const datastreamCommands: Readonly<Record<string, Command>> = {
  list: {
    summary: 'List datastreams, optionally filtered',
    options: {
      exchange: { type: 'string', placeholder: 'CODE', description: 'only this exchange' },
      instrument: { type: 'string', placeholder: 'SYMBOL', description: 'only this instrument' },
      'stream-type': {
        type: 'string',
        placeholder: 'TYPE',
        description: `only this stream type (${STREAM_TYPES.join(', ')})`,
      },
      limit: pageSize,
      max: MAX_OPTION,
    },
    async run({ client, options, call, print }) {
      const exchange = optionalString(options, 'exchange')
      const instrument = optionalString(options, 'instrument')
      const streamType = optionalString(options, 'stream-type')
      const limit = optionalInteger(options, 'limit')
      const stream_type = STREAM_TYPES.find((type) => type === streamType)
      if (streamType !== undefined && stream_type === undefined) {
        throw new UsageError(
          `--stream-type must be one of ${STREAM_TYPES.join(', ')}, got "${streamType}"`,
        )
      }
      const params = {
        ...(exchange === undefined ? {} : { exchange }),
        ...(instrument === undefined ? {} : { instrument }),
        ...(stream_type === undefined ? {} : { stream_type }),
        ...(limit === undefined ? {} : { limit }),
      }
      const datastreams: Datastream[] = await collect(
        client.datastreams.iterate(params, call),
        maxItems(options),
      )
      print(datastreams, () =>
        formatTable(
          expectRows(datastreams, 'a list of datastreams', [
            'datastream_id',
            'exchange',
            'instrument',
            'stream_type',
          ]),
          [
            { header: 'ID', value: (row) => String(row.datastream_id) },
            { header: 'EXCHANGE', value: (row) => row.exchange },
            { header: 'INSTRUMENT', value: (row) => row.instrument },
            { header: 'STREAM TYPE', value: (row) => row.stream_type },
          ],
        ),
      )
      return undefined
    },
  },
}
