import type { ClaimDecision } from '../../src/store/claim-decision.js'

/**
 * The contract's claim table, written out by hand, case by case: what a claim of a key whose
 * record is `record` comes to. Every implementation of the decision runs against it:
 * `decideClaim` (the stores that read, then write) and the Redis claim script (which decides
 * inside its atomic step). Times are offsets from now, at the boundaries: an expiry or a lease
 * end of `0` is now, which has passed; `1` is still ahead.
 */
export interface ClaimDecisionCase {
  readonly record:
    | undefined
    | {
        readonly state: 'completed' | 'in_progress'
        readonly sameFingerprint: boolean
        readonly expiresInMs: 0 | 1
        /** In progress only: when the holder's lease ends. */
        readonly leaseEndsInMs?: 0 | 1
      }
  readonly expected: ClaimDecision['kind']
}

const completed = (sameFingerprint: boolean, expiresInMs: 0 | 1) =>
  ({ state: 'completed', sameFingerprint, expiresInMs }) as const
const inProgress = (sameFingerprint: boolean, expiresInMs: 0 | 1, leaseEndsInMs: 0 | 1) =>
  ({ state: 'in_progress', sameFingerprint, expiresInMs, leaseEndsInMs }) as const

export const CLAIM_DECISION_TABLE: readonly ClaimDecisionCase[] = [
  { record: undefined, expected: 'fresh' },
  { record: completed(true, 1), expected: 'replay' },
  { record: completed(false, 1), expected: 'mismatch' },
  { record: completed(true, 0), expected: 'fresh' },
  { record: completed(false, 0), expected: 'fresh' },
  { record: inProgress(true, 1, 1), expected: 'in_progress' },
  { record: inProgress(false, 1, 1), expected: 'mismatch' },
  { record: inProgress(true, 1, 0), expected: 'take_over' },
  { record: inProgress(false, 1, 0), expected: 'mismatch' },
  // A live holder keeps its record past the record's expiry.
  { record: inProgress(true, 0, 1), expected: 'in_progress' },
  { record: inProgress(false, 0, 1), expected: 'mismatch' },
  { record: inProgress(true, 0, 0), expected: 'fresh' },
  { record: inProgress(false, 0, 0), expected: 'fresh' },
]

/** One line per case, for test names. */
export function describeCase({ record }: ClaimDecisionCase): string {
  if (record === undefined) return 'no record'
  const parts = [
    record.state,
    record.sameFingerprint ? 'same fingerprint' : 'other fingerprint',
    record.expiresInMs === 0 ? 'expired' : 'not expired',
  ]
  if (record.leaseEndsInMs !== undefined)
    parts.push(record.leaseEndsInMs === 0 ? 'lease lapsed' : 'lease live')
  return parts.join(', ')
}
