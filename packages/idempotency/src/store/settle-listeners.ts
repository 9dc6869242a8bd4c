/** In-process listeners per (scope, key), for stores that wake waiters of their own process. */
export interface SettleListeners {
  subscribe(scope: string, key: string, listener: () => void): () => void
  notify(scope: string, key: string): void
  /** {@link notify} by the framed id of {@link recordId}, as another process sends it. */
  notifyId(id: string): void
  /** Every listener of every key: the store can no longer answer for its claims. */
  notifyAll(): void
}

export function createSettleListeners(): SettleListeners {
  const byRecord = new Map<string, Set<() => void>>()
  const notifyId = (id: string) => {
    const set = byRecord.get(id)
    if (set === undefined) return
    for (const listener of [...set]) listener()
  }
  return {
    subscribe(scope, key, listener) {
      const id = recordId(scope, key)
      let set = byRecord.get(id)
      if (set === undefined) byRecord.set(id, (set = new Set()))
      set.add(listener)
      return () => {
        set.delete(listener)
        if (set.size === 0 && byRecord.get(id) === set) byRecord.delete(id)
      }
    },
    notify(scope, key) {
      notifyId(recordId(scope, key))
    },
    notifyId,
    notifyAll() {
      for (const id of [...byRecord.keys()]) notifyId(id)
    },
  }
}

/** Length-framed, so that no (scope, key) pair can spell another. */
export function recordId(scope: string, key: string): string {
  return `${String(scope.length)}:${scope}:${key}`
}
