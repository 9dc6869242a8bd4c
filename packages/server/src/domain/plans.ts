/**
 * The plans an account can be on. The public API names plan codes (`trial`, `starter`, `pro`)
 * but not their allowances; these numbers are ours (docs/decisions/0302-billing.md).
 */
export interface Plan {
  /** Streams that may record at the same time without extra charge. */
  readonly includedConcurrentStreams: number
  /** GiB of successful exports per billing period without extra charge. */
  readonly includedExportGb: number
  /** Whether usage beyond the allowance is billed (and so reported as `extra`). */
  readonly overage: boolean
}

export const PLANS = {
  trial: { includedConcurrentStreams: 2, includedExportGb: 1, overage: false },
  starter: { includedConcurrentStreams: 5, includedExportGb: 50, overage: true },
  pro: { includedConcurrentStreams: 50, includedExportGb: 1000, overage: true },
} as const satisfies Readonly<Record<string, Plan>>

export type PlanCode = keyof typeof PLANS

export const PLAN_CODES = Object.keys(PLANS) as readonly PlanCode[]

export function isPlanCode(value: string): value is PlanCode {
  return Object.hasOwn(PLANS, value)
}
