/** What the benchmark's own child servers and the benchmark say to each other over IPC. */

export interface AnswerTime {
  /** process.hrtime.bigint() when the request arrived (its first hook ran), as a decimal string. */
  readonly arrivedNs: string
  /** process.hrtime.bigint() when the answer was sent, as a decimal string. */
  readonly atNs: string
  readonly replayed: boolean
  readonly status: number
}

export type AppMessage =
  | { readonly type: 'ready'; readonly url: string }
  | { readonly type: 'error'; readonly message: string }
  | {
      readonly type: 'stats'
      readonly runs: number
      readonly answers: readonly AnswerTime[]
      /** process.hrtime.bigint() of each completion stored, as decimal strings. */
      readonly completions: readonly string[]
    }

export type ParentMessage = { readonly type: 'stats' } | { readonly type: 'stop' }
