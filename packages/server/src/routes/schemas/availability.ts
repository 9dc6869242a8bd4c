import type { ComponentSchema } from '../../http/schemas.js'
import { int64, ref } from '../../http/schemas.js'
import { DATASTREAM_SCHEMA } from './catalog.js'

const NS_STRING = {
  type: 'string',
  pattern: '^[0-9]{1,19}$',
}

export const AVAILABILITY_SCHEMA = {
  $id: 'Availability',
  type: 'object',
  required: ['datastream', 'ranges', 'updated_at'],
  additionalProperties: false,
  properties: {
    datastream: ref(DATASTREAM_SCHEMA.$id),
    ranges: {
      type: 'array',
      description: 'Oldest first, never overlapping.',
      items: {
        type: 'object',
        required: ['from', 'to', 'rows_estimate'],
        additionalProperties: false,
        properties: {
          from: {
            ...NS_STRING,
            description: 'Inclusive: nanoseconds since the epoch, as a string.',
          },
          to: { ...NS_STRING, description: 'Exclusive: nanoseconds since the epoch, as a string.' },
          rows_estimate: { ...int64(0), description: 'About how many messages the range holds.' },
        },
      },
    },
    updated_at: {
      type: 'string',
      format: 'date-time',
      description: 'When the ranges were computed (on each request).',
    },
  },
} as const satisfies ComponentSchema

export const AVAILABILITY_SCHEMAS: readonly ComponentSchema[] = [
  DATASTREAM_SCHEMA,
  AVAILABILITY_SCHEMA,
]
