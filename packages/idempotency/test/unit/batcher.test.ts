import { describe, expect, it } from 'vitest'
import { createBatcher } from '../../src/store/batcher.js'

/** A batch runner whose batches finish only when the test says so. */
function gatedRunner() {
  const batches: number[][] = []
  const gates: (() => void)[] = []
  let running = 0
  let mostRunning = 0
  const run = async (items: readonly number[]) => {
    batches.push([...items])
    running++
    mostRunning = Math.max(mostRunning, running)
    await new Promise<void>((resolve) => gates.push(resolve))
    running--
    return items.map((item) => item * 10)
  }
  /** Lets the oldest running batch finish, once one is running. */
  const openNext = async () => {
    await until(() => gates.length > 0)
    gates.shift()?.()
  }
  return { run, batches, openNext, mostRunning: () => mostRunning }
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Waits a few turns of the event loop for `condition` (the batcher sends on a later turn). */
async function until(condition: () => boolean): Promise<void> {
  for (let turns = 0; !condition() && turns < 100; turns++) await turn()
}

describe('createBatcher', () => {
  it('sends what arrives in one turn as one batch, and answers each item in order', async () => {
    const runner = gatedRunner()
    const batcher = createBatcher(runner.run)
    const answers = Promise.all([1, 2, 3].map((item) => batcher.push(item)))
    await turn()
    await runner.openNext()
    expect(await answers).toEqual([10, 20, 30])
    expect(runner.batches).toEqual([[1, 2, 3]])
  })

  it('keeps one batch in flight by default: the next fills up meanwhile', async () => {
    const runner = gatedRunner()
    const batcher = createBatcher(runner.run)
    const first = batcher.push(1)
    await turn()
    const rest = Promise.all([2, 3].map((item) => batcher.push(item)))
    await turn()
    expect(runner.batches).toEqual([[1]])
    await runner.openNext()
    await first
    await turn()
    await runner.openNext()
    await rest
    expect(runner.batches).toEqual([[1], [2, 3]])
    expect(runner.mostRunning()).toBe(1)
  })

  it('runs up to maxInFlight batches at once, and no more', async () => {
    const runner = gatedRunner()
    const batcher = createBatcher(runner.run, { maxInFlight: 2 })
    const answers: Promise<number>[] = []
    for (const item of [1, 2, 3]) {
      answers.push(batcher.push(item))
      await turn()
    }
    expect(runner.batches).toEqual([[1], [2]])
    await runner.openNext()
    await answers[0]
    await until(() => runner.batches.length === 3)
    expect(runner.batches).toEqual([[1], [2], [3]])
    await runner.openNext()
    await runner.openNext()
    expect(await Promise.all(answers)).toEqual([10, 20, 30])
    expect(runner.mostRunning()).toBe(2)
  })

  it('splits a queue longer than maxBatch, and rejects every item of a failed batch', async () => {
    const seen: number[][] = []
    const batcher = createBatcher(
      (items: readonly number[]) => {
        seen.push([...items])
        return items.includes(3)
          ? Promise.reject(new Error('lost connection'))
          : Promise.resolve(items)
      },
      { maxBatch: 2 },
    )
    const results = await Promise.allSettled([1, 2, 3, 4].map((item) => batcher.push(item)))
    expect(seen).toEqual([
      [1, 2],
      [3, 4],
    ])
    expect(results.map((result) => result.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'rejected',
      'rejected',
    ])
  })
})
