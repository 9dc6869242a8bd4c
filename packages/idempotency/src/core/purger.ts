import type { Store, StoreTransaction } from './store.js'

/**
 * The shortest rest between runs while a backlog remains, when `backlogDelayMs` is not set:
 * runs that take no time at all still leave the event loop alone for a while.
 */
const MIN_BACKLOG_REST_MS = 10

export interface PurgerOptions {
  /**
   * Time between purge runs while nothing is left to purge; also the longest rest while a
   * backlog remains.
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
   * after a short rest (see `backlogDelayMs`) instead of `intervalMs`.
   * @default 20
   */
  readonly maxBatchesPerRun?: number
  /**
   * Time between runs while a backlog remains, and before the first run. Unset (the default),
   * the purger rests as long as its last run took (at least 10 ms, at most `intervalMs`; the
   * first run comes after 10 ms): it purges at most about half the wall time, and deletes
   * about half as many records a second as the store's `purgeExpired` does back to back
   * (several times a store's peak keyed write rate: docs/benchmarks.md). Set, it is a fixed rest: the purger then deletes at most
   * `batchSize * maxBatchesPerRun` records per `backlogDelayMs` (10,000 a second with 1_000).
   * @default the last run's duration, at least 10 ms and at most `intervalMs`
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
  const maxBatchesPerRun = options.maxBatchesPerRun ?? 20
  const { backlogDelayMs } = options
  for (const [name, value] of Object.entries({
    intervalMs,
    batchSize,
    maxBatchesPerRun,
    ...(backlogDelayMs === undefined ? {} : { backlogDelayMs }),
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
    for (let batch = 0; batch < maxBatchesPerRun; batch++) {
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

  /**
   * The rest after a run that left a backlog. A fixed rest caps the purge rate whatever the
   * store can do (one second did at 10,000 records a second, below SQLite's keyed write rate).
   * Resting as long as the run took is a duty cycle of one half: the purge rate follows the
   * store's delete rate, and a store deletes a batch far faster than it takes the keyed writes
   * that made it (SQLite some six times), so the purge keeps up with the writes while requests
   * keep at least half the time. The run's duration includes the requests that ran while it
   * yielded between batches, so under load it rests longer.
   */
  const backlogRest = (runMs: number): number =>
    backlogDelayMs ?? Math.min(intervalMs, Math.max(MIN_BACKLOG_REST_MS, Math.ceil(runMs)))

  const schedule = (delayMs: number) => {
    if (stopped) return
    timer = setTimeout(() => {
      const startedAt = performance.now()
      run().then(
        ({ deleted, backlog }) => {
          options.onRun?.(deleted)
          schedule(backlog ? backlogRest(performance.now() - startedAt) : intervalMs)
        },
        (error: unknown) => {
          options.onError?.(error)
          schedule(intervalMs)
        },
      )
    }, delayMs)
    timer.unref()
  }
  // The first run comes soon, as after a run that left a backlog: a store that was down for a
  // while starts with one.
  schedule(Math.min(intervalMs, backlogDelayMs ?? MIN_BACKLOG_REST_MS))

  return {
    runOnce: () => run().then(({ deleted }) => deleted),
    async stop() {
      stopped = true
      clearTimeout(timer)
      await running?.catch(() => undefined)
    },
  }
}
