import type { ComponentSchema } from '../../http/schemas.js'
import { int64, ref } from '../../http/schemas.js'
import { DATASTREAM_SCHEMA } from './catalog.js'

export const SPAN_SCHEMA = {
  $id: 'Span',
  type: 'object',
  description: 'A period during which the subscription recorded.',
  required: ['id', 'started_at', 'ended_at'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', pattern: '^spn_[0-9a-f]{32}$' },
    started_at: { type: 'string', format: 'date-time' },
    ended_at: {
      type: ['string', 'null'],
      format: 'date-time',
      description: 'Null while the span is open.',
    },
  },
} as const satisfies ComponentSchema

export const SUBSCRIPTION_SCHEMA = {
  $id: 'Subscription',
  type: 'object',
  required: ['id', 'datastream_id', 'status', 'created_at', 'datastream'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', pattern: '^sub_[0-9a-f]{32}$' },
    datastream_id: int64(1),
    status: { type: 'string', enum: ['active', 'paused', 'deleted'] },
    created_at: { type: 'string', format: 'date-time' },
    datastream: ref(DATASTREAM_SCHEMA.$id),
    spans: {
      type: 'array',
      items: ref(SPAN_SCHEMA.$id),
      description:
        'Only in the answer to create, and always empty there; the span opened at once is listed by `GET /v1/subscriptions/{id}/spans`.',
    },
  },
} as const satisfies ComponentSchema

/** The body of `POST /v1/subscriptions`. Validated: keep it free of unknown keywords. */
export const CREATE_SUBSCRIPTION_BODY = {
  type: 'object',
  required: ['datastream_id'],
  additionalProperties: false,
  properties: {
    datastream_id: {
      type: 'integer',
      minimum: 1,
      // 2^63 as a double: a JSON number this large is past int64 (9223372036854775807 itself
      // parses to the same double, so it is refused too; no datastream has such an id).
      exclusiveMaximum: 9223372036854775808,
      description: 'The datastream to record (a positive int64).',
    },
  },
} as const

export const SUBSCRIPTION_SCHEMAS: readonly ComponentSchema[] = [
  DATASTREAM_SCHEMA,
  SPAN_SCHEMA,
  SUBSCRIPTION_SCHEMA,
]
