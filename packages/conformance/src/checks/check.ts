import type { AccountClient } from '../api/account-client.js'
import type { SlowMode } from '../slow-mode.js'

/** What a check needs beyond the account's key; without it the check is reported "not run". */
export type Requirement = 'other-account' | 'same-account-key' | 'slow'

export interface Check {
  /** Stable, dotted: the group, then what is checked, e.g. `key.canonical-equality`. */
  readonly id: string
  readonly title: string
  /** The section of `spec/idempotency.md` and the words of it that the check holds a server to. */
  readonly clause: string
  readonly requires?: readonly Requirement[]
  run(context: CheckContext): Promise<void>
}

export interface CheckContext {
  /** The `--api-key` account. */
  readonly account: AccountClient
  /** The `--other-account-key` account; present when the check requires it. */
  readonly otherAccount: AccountClient
  /** `--same-account-key`: a second key of the first account; present when required. */
  readonly sameAccountKey: AccountClient
  readonly slow: SlowMode
  /** How long the contract's duplicate waits for a running original ("about 3 seconds"). */
  readonly waitMs: number
  /** How many requests the concurrency checks send at once. */
  readonly concurrency: number
  /**
   * A datastream that neither account had an active or paused subscription to when the run
   * began, handed out once. Everything the suite subscribes to comes from here, and is deleted
   * again at the end.
   */
  readonly takeDatastream: () => number
  /** A positive int64 that is no datastream of the catalog. */
  readonly unknownDatastreamId: number
  /** Records an export schema the suite created, for deletion at the end. */
  readonly trackExportSchema: (client: AccountClient, id: string) => void
  /** A fresh UUIDv4, lowercase hyphenated. */
  readonly newKey: () => string
  /** A name no earlier run used, for export schemas. */
  readonly uniqueName: () => string
}
