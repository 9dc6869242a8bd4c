/** A source of wall-clock time in epoch milliseconds. Injected so that tests can drive leases and expiry. */
export interface Clock {
  now(): number
}

/** The process's own clock (`Date.now()`). */
export const systemClock: Clock = { now: () => Date.now() }

/** A clock that moves only when told to: for tests of leases and expiry. */
export interface ManualClock extends Clock {
  advance(ms: number): void
  set(epochMs: number): void
}

export function createManualClock(startMs = Date.UTC(2026, 0, 1)): ManualClock {
  let current = startMs
  return {
    now: () => current,
    advance(ms) {
      current += ms
    },
    set(epochMs) {
      current = epochMs
    },
  }
}
