import type { HeaderLine } from './http/http-client.js'

/**
 * How the suite can make the target's operation slow, for the checks about requests that
 * arrive while their original still runs:
 * - `header`: the target sleeps as many milliseconds as this request header says, once it has
 *   claimed the key (a test hook of the target's own; `--slow-header`);
 * - `server`: every mutating operation of the target takes this long (e.g. the Ticksupply
 *   server started with `TICKSUPPLY_TEST_HANDLER_DELAY_MS`; `--server-delay-ms`);
 * - `none`: the target cannot be made slow, and those checks are not run.
 */
export type SlowMode =
  | { readonly kind: 'none' }
  | { readonly kind: 'header'; readonly name: string }
  | { readonly kind: 'server'; readonly delayMs: number }

/** A slow operation the suite can ask for: the headers to send, and how long it will take. */
export interface SlowOperation {
  readonly headers: readonly HeaderLine[]
  readonly durationMs: number
}

/** An operation of about `wantedMs`: exactly that with a header, the server's delay otherwise. */
export function slowOperation(mode: SlowMode, wantedMs: number): SlowOperation | undefined {
  switch (mode.kind) {
    case 'none':
      return undefined
    case 'header':
      return { headers: [[mode.name, String(wantedMs)]], durationMs: wantedMs }
    case 'server':
      return { headers: [], durationMs: mode.delayMs }
  }
}

export function describeSlowMode(mode: SlowMode): string {
  switch (mode.kind) {
    case 'none':
      return 'none'
    case 'header':
      return `request header ${mode.name}`
    case 'server':
      return `every operation takes ${String(mode.delayMs)} ms`
  }
}
