/**
 * Collects the calls made in one turn of the event loop and runs them as one batch: one round
 * trip, one commit, for everything that arrived together. While a batch is in flight the next
 * one fills up, so under load batches grow by themselves and at rest a call waits for one
 * `setImmediate` at most.
 */
export interface Batcher<Item, Result> {
  push(item: Item): Promise<Result>
}

/**
 * `run` gets the items of a batch and resolves one result per item, in order (or rejects, and
 * every item of the batch rejects with it). `maxInFlight` batches may run at once (default one:
 * a caller whose batches may overlap must make them safe to).
 */
export function createBatcher<Item, Result>(
  run: (items: readonly Item[]) => Promise<readonly Result[]>,
  options: { readonly maxBatch?: number; readonly maxInFlight?: number } = {},
): Batcher<Item, Result> {
  const maxBatch = options.maxBatch ?? 500
  const maxInFlight = options.maxInFlight ?? 1
  interface Pending {
    readonly item: Item
    readonly resolve: (result: Result) => void
    readonly reject: (error: unknown) => void
  }
  let queue: Pending[] = []
  let scheduled = false
  let inFlight = 0

  const send = () => {
    scheduled = false
    if (inFlight >= maxInFlight || queue.length === 0) return
    const batch = queue.length <= maxBatch ? queue : queue.slice(0, maxBatch)
    queue = queue.length <= maxBatch ? [] : queue.slice(maxBatch)
    inFlight++
    const items = batch.map((pending) => pending.item)
    void Promise.resolve()
      .then(() => run(items))
      .then(
        (results) => {
          batch.forEach((pending, index) => {
            pending.resolve(results[index] as Result)
          })
        },
        (error: unknown) => {
          for (const pending of batch) pending.reject(error)
        },
      )
      .finally(() => {
        inFlight--
        if (queue.length > 0) schedule()
      })
  }
  const schedule = () => {
    if (scheduled) return
    scheduled = true
    setImmediate(send)
  }

  return {
    push(item) {
      return new Promise<Result>((resolve, reject) => {
        queue.push({ item, resolve, reject })
        if (inFlight < maxInFlight) schedule()
      })
    },
  }
}
