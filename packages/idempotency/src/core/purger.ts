import type { Store, StoreTransaction } from './store.js'

export interface PurgerOptions {
  /**
   * Time between purge runs.
   * @default 60_000
   */
  readonly intervalMs?: number
  /**
   * Records deleted per batch: small enough that one batch never holds the database for long.
   * @default 500
   */
  readonly batchSize?: number
  /**
   * Batches per run at most; a backlog larger than this is worked off over later runs.
   * @default 20
   */
  readonly maxBatchesPerRun?: number
  /** Called with the error of a failed run; the purger keeps going. */
  readonly onError?: (error: unknown) => void
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
  for (const [name, value] of Object.entries({ intervalMs, batchSize, maxBatches })) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new TypeError(`Expected \`${name}\` to be a positive integer, got ${String(value)}.`)
    }
  }
  let running: Promise<number> | undefined

  async function runBatches(): Promise<number> {
    let total = 0
    for (let batch = 0; batch < maxBatches; batch++) {
      const deleted = await store.purgeExpired(batchSize)
      total += deleted
      if (deleted < batchSize) break
    }
    return total
  }

  function runOnce(): Promise<number> {
    running ??= runBatches().finally(() => {
      running = undefined
    })
    return running
  }

  const timer = setInterval(() => {
    runOnce().catch((error: unknown) => options.onError?.(error))
  }, intervalMs)
  timer.unref()

  return {
    runOnce,
    async stop() {
      clearInterval(timer)
      await running?.catch(() => undefined)
    },
  }
}
