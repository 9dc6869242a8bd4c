/**
 * Waits until the first of: `delayMs` passes, `wake` is called, or `signal` aborts. Resolves
 * `'aborted'` in the last case, `'ready'` otherwise. Leaves no timer or listener behind.
 */
export function waitForWake(
  delayMs: number,
  signal: AbortSignal | undefined,
  subscribe: ((wake: () => void) => () => void) | undefined,
): Promise<'ready' | 'aborted'> {
  if (signal?.aborted === true) return Promise.resolve('aborted')
  return new Promise((resolve) => {
    // An object, since the callbacks below flip it between statements.
    const state = { done: false }
    const finish = (result: 'ready' | 'aborted') => {
      if (state.done) return
      state.done = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      unsubscribe?.()
      resolve(result)
    }
    const onAbort = () => {
      finish('aborted')
    }
    const timer = setTimeout(finish, delayMs, 'ready')
    signal?.addEventListener('abort', onAbort, { once: true })
    const unsubscribe = subscribe?.(() => {
      finish('ready')
    })
    // A wake delivered during subscribe() finished before unsubscribe existed.
    if (state.done) unsubscribe?.()
  })
}

/**
 * The duplicate's poll schedule: `initialMs`, doubling each time, the last one cut to what is
 * left of the budget (50, 100, 200, 400, 800, 1450 for 50 ms within 3 s).
 */
export function nextPollDelay(attempt: number, initialMs: number, remainingMs: number): number {
  return Math.max(0, Math.min(initialMs * 2 ** attempt, remainingMs))
}
