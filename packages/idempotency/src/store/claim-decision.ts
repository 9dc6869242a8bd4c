import type { StoredResponse } from '../core/record.js'

/** A stored record as a store read it, with what the store knows about its holder. */
export type RecordView =
  | {
      readonly state: 'completed'
      readonly fingerprint: string
      /** On the store's clock, like `now` below. */
      readonly expiresAt: number
      readonly response: StoredResponse
    }
  | {
      readonly state: 'in_progress'
      readonly fingerprint: string
      readonly expiresAt: number
      /** Whether the claim's holder is still alive (its lease, session or process). */
      readonly holderAlive: boolean
    }

/**
 * What a claim of a key whose record is `record` comes to. `fresh`: no live record, the
 * caller may create one (replacing an expired one); `take_over`: the holder died, the caller
 * may move the claim to its own token. Everything else is the claim's final outcome.
 */
export type ClaimDecision =
  | { readonly kind: 'fresh' }
  | { readonly kind: 'take_over' }
  | { readonly kind: 'replay'; readonly response: StoredResponse }
  | { readonly kind: 'mismatch' }
  | { readonly kind: 'in_progress' }

/**
 * The contract's table, once for every store. The order matters: an expired record is gone
 * (whatever its fingerprint) unless a live holder still runs under it; the fingerprint is
 * compared before the state, so a different request never waits and never replays.
 */
export function decideClaim(
  record: RecordView | undefined,
  fingerprint: string,
  now: number,
): ClaimDecision {
  if (record === undefined) return FRESH
  const held = record.state === 'in_progress' && record.holderAlive
  if (record.expiresAt <= now && !held) return FRESH
  if (record.fingerprint !== fingerprint) return MISMATCH
  if (record.state === 'completed') return { kind: 'replay', response: record.response }
  return held ? IN_PROGRESS : TAKE_OVER
}

const FRESH = { kind: 'fresh' } as const
const TAKE_OVER = { kind: 'take_over' } as const
const MISMATCH = { kind: 'mismatch' } as const
const IN_PROGRESS = { kind: 'in_progress' } as const
