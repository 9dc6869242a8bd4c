/**
 * What the soak's clients saw, key by key, and the invariants over it: a key's answers (first
 * and every replay) are byte-identical, a key with a stored answer never runs another body, and
 * nothing answers 5xx but the 503s of a store that is down.
 */

export interface SoakKey {
  readonly key: string
  readonly apiKey: string
  /** `start_time` of the key's body: the export it creates is found by it. */
  readonly base: bigint
  /** The first answer seen for the key (status and bytes); every later one must equal it. */
  answer: { readonly status: number; readonly body: Buffer } | undefined
  /** Answers without `Idempotent-Replayed`: the key's operation ran for them. */
  originals: number
  /** Answers compared with the first. */
  replays: number
}

export type Violation =
  | { readonly kind: 'replay_differs'; readonly key: string; readonly detail: string }
  | { readonly kind: 'ran_twice'; readonly key: string; readonly detail: string }
  | { readonly kind: 'server_error'; readonly key: string; readonly detail: string }
  | { readonly kind: 'unexpected_answer'; readonly key: string; readonly detail: string }

export interface Counts {
  requests: number
  keyed: number
  reads: number
  originals: number
  replays: number
  mismatches: number
  inProgress: number
  unavailable: number
  networkErrors: number
  aborted: number
}

const IN_PROGRESS = 'Request is still in progress. Please retry later.'
const MISMATCH = 'Idempotency key reused with different request parameters'

export class Ledger {
  readonly keys: SoakKey[] = []
  readonly violations: Violation[] = []
  readonly counts: Counts = {
    requests: 0,
    keyed: 0,
    reads: 0,
    originals: 0,
    replays: 0,
    mismatches: 0,
    inProgress: 0,
    unavailable: 0,
    networkErrors: 0,
    aborted: 0,
  }

  /**
   * Judges one keyed answer for `key`: sent with its own body, or (`own: false`) with another
   * body, which the soak only does for keys whose answer is stored, so it must be refused.
   */
  record(
    key: SoakKey,
    own: boolean,
    answer: { status: number; body: Buffer; replayed: boolean },
  ): 'final' | 'retry' {
    const text = answer.body.toString('utf8')
    const message = (() => {
      try {
        return (JSON.parse(text) as { error?: { message?: string } }).error?.message
      } catch {
        return undefined
      }
    })()
    if (answer.status === 503) {
      this.counts.unavailable++
      return 'retry'
    }
    if (answer.status >= 500) {
      this.violations.push({
        kind: 'server_error',
        key: key.key,
        detail: `${String(answer.status)} ${text.slice(0, 200)}`,
      })
      return 'retry'
    }
    if (answer.status === 409 && message === IN_PROGRESS) {
      this.counts.inProgress++
      return 'retry'
    }
    if (answer.status === 409 && message === MISMATCH) {
      this.counts.mismatches++
      if (own)
        this.violations.push({
          kind: 'unexpected_answer',
          key: key.key,
          detail: 'its own body was refused as a mismatch',
        })
      return 'final'
    }
    if (!own) {
      this.violations.push({
        kind: 'ran_twice',
        key: key.key,
        detail: `another body answered ${String(answer.status)} after an answer was stored`,
      })
      return 'final'
    }
    if (answer.replayed) {
      this.counts.replays++
      key.replays++
    } else {
      this.counts.originals++
      key.originals++
      if (key.originals > 1)
        this.violations.push({
          kind: 'ran_twice',
          key: key.key,
          detail: 'two answers without Idempotent-Replayed',
        })
    }
    if (key.answer === undefined) {
      key.answer = { status: answer.status, body: answer.body }
    } else if (key.answer.status !== answer.status || !key.answer.body.equals(answer.body)) {
      this.violations.push({
        kind: 'replay_differs',
        key: key.key,
        detail: `${String(key.answer.status)} ${key.answer.body.toString('utf8').slice(0, 120)} then ${String(answer.status)} ${text.slice(0, 120)}`,
      })
    }
    return 'final'
  }
}
