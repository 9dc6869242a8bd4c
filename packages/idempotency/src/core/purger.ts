import type { Store, StoreTransaction } from './store.js'

export interface PurgerOptions {
  /**
   * Time between purge runs while nothing is left to purge.
   * @default 60_000
   */
  readonly intervalMs?: number
  /**
   * Records deleted per batch: small enough that one batch never holds the database for long.
   * @default 500
   */
  readonly batchSize?: number
  /**
   * Batches per run at most; a run that reaches it leaves a backlog, and the next run follows
   * after `backlogDelayMs` instead of `intervalMs`.
   * @default 20
   */
  readonly maxBatchesPerRun?: number
  /**
   * Time between runs while a backlog remains: the purger keeps up with any write rate below
   * `batchSize * maxBatchesPerRun` records per `backlogDelayMs` (10,000 a second by default),
   * yielding to requests between batches.
   * @default 1_000
   */
  readonly backlogDelayMs?: number
  /** Called with the error of a failed run; the purger keeps going. */
  readonly onError?: (error: unknown) => void
  /** Called after each run with the records it deleted. */
  readonly onRun?: (deleted: number) => void
}

export interface Purger {
  /** One run now: batches until a short batch or the per-run limit. Resolves records deleted. */
  runOnce(): Promise<number>
  /** Stops the timer; resolves when a run in flight has ended. */
  stop(): Promise<void>
}

/** Deletes expired records in the background, in bounded batches, on an unref'd timer. */
export function startPurger<Tx extends StoreTransaction>(
  store: Store<Tx>,
  options: PurgerOptions = {},
): Purger {
  const intervalMs = options.intervalMs ?? 60_000
  const batchSize = options.batchSize ?? 500
  const maxBatches = options.maxBatchesPerRun ?? 20
  const backlogDelayMs = options.backlogDelayMs ?? 1_000
  for (const [name, value] of Object.entries({
    intervalMs,
    batchSize,
    maxBatches,
    backlogDelayMs,
  })) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new TypeError(`Expected \`${name}\` to be a positive integer, got ${String(value)}.`)
    }
  }
  let running: Promise<{ deleted: number; backlog: boolean }> | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  let stopped = false

  async function runBatches(): Promise<{ deleted: number; backlog: boolean }> {
    let deleted = 0
    for (let batch = 0; batch < maxBatches; batch++) {
      const count = await store.purgeExpired(batchSize)
      deleted += count
      if (count < batchSize) return { deleted, backlog: false }
      // Let the requests waiting behind this batch go first.
      await new Promise((resolve) => setTimeout(resolve, 0))
    }
    return { deleted, backlog: true }
  }

  function run(): Promise<{ deleted: number; backlog: boolean }> {
    running ??= runBatches().finally(() => {
      running = undefined
    })
    return running
  }

  const schedule = (delayMs: number) => {
    if (stopped) return
    timer = setTimeout(() => {
      run().then(
        ({ deleted, backlog }) => {
          options.onRun?.(deleted)
          schedule(backlog ? backlogDelayMs : intervalMs)
        },
        (error: unknown) => {
          options.onError?.(error)
          schedule(intervalMs)
        },
      )
    }, delayMs)
    timer.unref()
  }
  // The first run comes soon: a store that was down for a while starts with a backlog.
  schedule(Math.min(intervalMs, backlogDelayMs))

  return {
    runOnce: () => run().then(({ deleted }) => deleted),
    async stop() {
      stopped = true
      clearTimeout(timer)
      await running?.catch(() => undefined)
    },
  }
}
