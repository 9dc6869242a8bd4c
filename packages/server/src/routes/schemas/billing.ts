import type { ComponentSchema } from '../../http/schemas.js'

export const BILLING_SUMMARY_SCHEMA = {
  $id: 'BillingSummary',
  type: 'object',
  description:
    "The account's plan, access and usage in the current period (a calendar month, UTC).",
  required: ['access_status', 'usage', 'grace_until', 'plan_code', 'current_period_end'],
  additionalProperties: false,
  properties: {
    access_status: {
      type: 'string',
      enum: ['ACTIVE', 'TRIALING', 'GRACE', 'SUSPENDED', 'NONE'],
      description: '`SUSPENDED` and `NONE` get 402 on billing-gated calls.',
    },
    usage: {
      type: 'object',
      required: ['extra_stream_minutes_total', 'export_gb_total', 'export_gb_extra'],
      additionalProperties: false,
      properties: {
        extra_stream_minutes_total: {
          type: 'integer',
          minimum: 0,
          description:
            "Stream-minutes recorded beyond the plan's concurrent streams; 0 on plans without overage.",
        },
        export_gb_total: {
          type: 'string',
          pattern: '^\\d+(\\.\\d{1,3})?$',
          description: 'GiB of successful exports this period, as a decimal string.',
          examples: ['12.5'],
        },
        export_gb_extra: {
          type: 'integer',
          minimum: 0,
          description: "Whole GiB beyond the plan's allowance, rounded up.",
        },
      },
    },
    grace_until: {
      type: ['string', 'null'],
      format: 'date-time',
      description: 'Only while `access_status` is `GRACE`.',
    },
    plan_code: {
      type: ['string', 'null'],
      examples: ['starter'],
      description: 'Null without a plan (`NONE`).',
    },
    current_period_end: {
      type: ['string', 'null'],
      format: 'date-time',
      description: 'Null without an active billing subscription (`NONE`).',
    },
  },
} as const satisfies ComponentSchema

export const BILLING_SCHEMAS: readonly ComponentSchema[] = [BILLING_SUMMARY_SCHEMA]
