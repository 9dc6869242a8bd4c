import type { ArtifactStore } from './artifact-store.js'

export interface ArtifactCleanupOptions {
  readonly store: ArtifactStore
  /** Told of every failed attempt; the last one says that it gives up. */
  readonly onError: (error: unknown, message: string) => void
  /**
   * Waits before each retry of a failed removal. Bounded: after the last one the folder stays
   * until the export worker's sweep at the next start removes it.
   * @default [1_000, 5_000, 30_000, 120_000, 600_000]
   */
  readonly retryDelaysMs?: readonly number[]
}

export interface ArtifactCleanup {
  /**
   * Removes the files under `prefix` once what referenced them has committed, and resolves
   * when the first attempt is over. Never rejects: an answer already committed (and stored for
   * replay) must not turn into an error because a file could not be removed. A failure is
   * reported and retried in the background.
   */
  remove(prefix: string): Promise<void>
  /** Cancels pending retries (a stopping server); what they would have removed is swept later. */
  stop(): void
}

const DEFAULT_RETRY_DELAYS_MS = [1_000, 5_000, 30_000, 120_000, 600_000]

/** Removal of export files after the commit that made them garbage, with bounded retries. */
export function createArtifactCleanup(options: ArtifactCleanupOptions): ArtifactCleanup {
  const delays = options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS
  const timers = new Set<NodeJS.Timeout>()
  let stopped = false

  const attempt = (prefix: string, failures: number): Promise<void> =>
    // Through a promise, so that a store that throws at once is handled like one that rejects.
    Promise.resolve()
      .then(() => options.store.deletePrefix(prefix))
      .catch((error: unknown) => {
        const delayMs = delays[failures]
        if (delayMs === undefined || stopped) {
          options.onError(
            error,
            `could not remove ${prefix}; giving up until the export sweep at the next start`,
          )
          return
        }
        options.onError(error, `could not remove ${prefix}; retrying in ${String(delayMs)} ms`)
        const timer = setTimeout(() => {
          timers.delete(timer)
          void attempt(prefix, failures + 1)
        }, delayMs)
        // A pending cleanup must not keep the process alive.
        timer.unref()
        timers.add(timer)
      })

  return {
    remove: (prefix) => attempt(prefix, 0),
    stop() {
      stopped = true
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
    },
  }
}
