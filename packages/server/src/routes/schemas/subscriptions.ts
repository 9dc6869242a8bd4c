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

/**
 * The body of `POST /v1/subscriptions`, as documented. It is parsed by
 * `parseCreateSubscriptionBody`, not by ajv: a JSON number cannot tell 2^63 - 1 from 2^63, nor
 * 2^53 + 1 from 2^53.
 */
export const CREATE_SUBSCRIPTION_BODY = {
  type: 'object',
  required: ['datastream_id'],
  additionalProperties: false,
  properties: {
    datastream_id: int64(1, 'The datastream to record (a positive int64).'),
  },
} as const

export const SUBSCRIPTION_SCHEMAS: readonly ComponentSchema[] = [
  DATASTREAM_SCHEMA,
  SPAN_SCHEMA,
  SUBSCRIPTION_SCHEMA,
]
