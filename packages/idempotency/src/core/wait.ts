/**
 * One waiting duplicate's wake-ups for the whole of its wait: the store's settle notices, its
 * poll timer and the client's signal. The notice subscription and the abort listener are set up
 * once, not once per poll: in a storm a thousand duplicates wait on one key, and every listener
 * added and removed on an `AbortSignal` costs microseconds each.
 */
export class WakeUps {
  /** Settle notices heard so far: a look that began before the last one must be taken again. */
  notices = 0
  readonly #signal: AbortSignal | undefined
  readonly #unsubscribe: (() => void) | undefined
  #pending: ((result: 'ready' | 'aborted') => void) | undefined
  #timer: ReturnType<typeof setTimeout> | undefined

  /**
   * @param subscribe registers a settle listener and returns its unsubscribe function;
   *   `onNotice` runs on every notice (an event for metrics), before the sleeper wakes.
   */
  constructor(
    signal: AbortSignal | undefined,
    subscribe: ((listener: () => void) => () => void) | undefined,
    onNotice: () => void,
  ) {
    this.#signal = signal
    signal?.addEventListener('abort', this.#onAbort, { once: true })
    this.#unsubscribe = subscribe?.(() => {
      this.notices++
      onNotice()
      if (WakeUps.#noticed.push(this) === 1) setImmediate(WakeUps.#wakeNoticed)
    })
  }

  /**
   * Sleepers whose key settled in this turn of the event loop. They wake in the next turn, all
   * together: the completion that sent the notice resumes its own request first, so that the
   * original's answer goes out before a thousand replays instead of after them.
   */
  static #noticed: WakeUps[] = []
  static readonly #wakeNoticed = () => {
    const noticed = WakeUps.#noticed
    WakeUps.#noticed = []
    for (const wakeUps of noticed) wakeUps.#wake('ready')
  }

  /**
   * Resolves `'ready'` once `delayMs` passes or a notice arrives, `'aborted'` once the signal
   * aborts (at once if it has).
   */
  sleep(delayMs: number): Promise<'ready' | 'aborted'> {
    if (this.#signal?.aborted === true) return Promise.resolve('aborted')
    return new Promise((resolve) => {
      this.#pending = resolve
      this.#timer = setTimeout(this.#onTimer, delayMs)
    })
  }

  /** Leaves no timer, listener or subscription behind. */
  dispose(): void {
    this.#wake('ready')
    this.#signal?.removeEventListener('abort', this.#onAbort)
    this.#unsubscribe?.()
  }

  readonly #onAbort = () => {
    this.#wake('aborted')
  }

  readonly #onTimer = () => {
    this.#timer = undefined
    this.#wake('ready')
  }

  #wake(result: 'ready' | 'aborted'): void {
    const resolve = this.#pending
    if (resolve === undefined) return
    this.#pending = undefined
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    resolve(result)
  }
}

/**
 * The duplicate's poll schedule: `initialMs`, doubling each time, the last one cut to what is
 * left of the budget (50, 100, 200, 400, 800, 1450 for 50 ms within 3 s).
 */
export function nextPollDelay(attempt: number, initialMs: number, remainingMs: number): number {
  return Math.max(0, Math.min(initialMs * 2 ** attempt, remainingMs))
}

/**
 * The sleep of a waiter that polls nothing, to its deadline. The first is the whole budget,
 * `waitMs` exactly, whatever the microseconds the first looks took: Node keeps one list per
 * timer duration, and a thousand waiters each with a duration of its own make a thousand lists
 * (several milliseconds to set up and clear in a storm), where one duration makes one.
 */
export function untilDeadline(attempt: number, waitMs: number, remainingMs: number): number {
  return attempt === 0 ? waitMs : Math.max(0, Math.ceil(remainingMs))
}
