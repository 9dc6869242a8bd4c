import type { TicksupplyClient } from '../client.js'
import type { CallOptions, MutationOptions } from '../send-with-retries.js'
import type { ExitOutcome } from './exit-codes.js'
import type { Progress } from './progress.js'

export interface OptionSpec {
  readonly type: 'string' | 'boolean'
  /** Shown in the help, e.g. `--exchange CODE`. */
  readonly placeholder?: string
  readonly description: string
}

/** One `ticksupply <resource> <verb>` command. */
export interface Command {
  readonly summary: string
  /** Names of the positional arguments after the verb, e.g. `['ID']`; all required. */
  readonly positionals?: readonly string[]
  readonly options?: Readonly<Record<string, OptionSpec>>
  /** Whether it sends a POST or DELETE, and so accepts `--idempotency-key` and `--operation-id`. */
  readonly mutation?: boolean
  run(context: CommandContext): Promise<ExitOutcome | undefined>
}

export type OptionValues = Readonly<Record<string, string | boolean | undefined>>

export interface CommandContext {
  readonly client: TicksupplyClient
  readonly baseUrl: string
  readonly positionals: readonly string[]
  readonly options: OptionValues
  /** Per-call options of a read: the Ctrl-C signal. */
  readonly call: CallOptions
  /** Per-call options of a change: the signal plus any `--idempotency-key` / `--operation-id`. */
  readonly mutation: MutationOptions
  readonly signal: AbortSignal
  /** Prints a result: as JSON with `--json`, else what `human` renders. */
  readonly print: (value: unknown, human: () => string) => void
  /** A progress or status line for people, on stderr so that stdout stays parseable. */
  readonly info: (line: string) => void
  /** A status line redrawn in place on a terminal; silent with `--json` or without a TTY. */
  readonly progress: Progress
}
