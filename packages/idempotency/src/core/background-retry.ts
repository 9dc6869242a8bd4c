/**
 * Retries a store write in the background, with exponential backoff, until it succeeds or the
 * retry window closes. For writes whose failure must not strand a key (a release the store
 * refused while it was down): the request that needed them has long been answered.
 */
export interface BackgroundRetrier {
  /**
   * Runs `action` again later until it resolves (any value: `false` means the claim was lost
   * meanwhile, which also ends the retries) or the window closes.
   */
  schedule(action: () => Promise<unknown>): void
  /** Writes still waiting for a retry. */
  readonly pending: number
  /** Runs every pending write once more now; resolves when they have settled. */
  flush(): Promise<void>
}

export interface BackgroundRetryOptions {
  /** @default 100 */
  readonly firstDelayMs?: number
  /** @default 30_000 */
  readonly maxDelayMs?: number
  /** After this long the write is given up (the key is left to its lease or expiry). @default 3_600_000 */
  readonly windowMs?: number
  readonly onError?: (error: unknown) => void
}

export function createBackgroundRetrier(options: BackgroundRetryOptions = {}): BackgroundRetrier {
  const firstDelayMs = options.firstDelayMs ?? 100
  const maxDelayMs = options.maxDelayMs ?? 30_000
  const windowMs = options.windowMs ?? 3_600_000
  interface Entry {
    readonly action: () => Promise<unknown>
    readonly giveUpAt: number
    delayMs: number
    timer: ReturnType<typeof setTimeout> | undefined
  }
  const entries = new Set<Entry>()

  const attempt = (entry: Entry): Promise<void> => {
    entry.timer = undefined
    return entry.action().then(
      () => {
        entries.delete(entry)
      },
      (error: unknown) => {
        options.onError?.(error)
        if (Date.now() >= entry.giveUpAt) {
          entries.delete(entry)
          return
        }
        arm(entry)
      },
    )
  }
  const arm = (entry: Entry) => {
    const delayMs = entry.delayMs
    entry.delayMs = Math.min(maxDelayMs, delayMs * 2)
    // Unref'd: a pending retry never keeps a process alive that has nothing else to do.
    entry.timer = setTimeout(() => void attempt(entry), delayMs)
    entry.timer.unref()
  }

  return {
    schedule(action) {
      const entry: Entry = {
        action,
        giveUpAt: Date.now() + windowMs,
        delayMs: firstDelayMs,
        timer: undefined,
      }
      entries.add(entry)
      arm(entry)
    },
    get pending() {
      return entries.size
    },
    async flush() {
      const due = [...entries].filter((entry) => entry.timer !== undefined)
      for (const entry of due) clearTimeout(entry.timer)
      await Promise.all(due.map(attempt))
    },
  }
}
