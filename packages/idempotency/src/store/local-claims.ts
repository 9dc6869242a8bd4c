/** A claim this process holds, as the store keeps it in memory. */
export interface LocalClaim {
  readonly fingerprint: string
  readonly token: string
  /** When the record will expire, on the store's clock. */
  readonly expiresAt: number
}

/**
 * The claims this process holds, by record id. For a store whose claims live only in memory
 * (SQLite, owned by one process) this is the claim itself; for a shared store it lets
 * duplicates on the same instance find the holder (and its fingerprint) without a round trip.
 */
export interface LocalClaims {
  get(id: string): LocalClaim | undefined
  add(id: string, claim: LocalClaim): void
  /** Removes the claim if it still carries `token`; reports whether it did. */
  delete(id: string, token: string): boolean
  readonly size: number
  values(): IterableIterator<LocalClaim>
}

export function createLocalClaims(): LocalClaims {
  const claims = new Map<string, LocalClaim>()
  return {
    get: (id) => claims.get(id),
    add(id, claim) {
      claims.set(id, claim)
    },
    delete(id, token) {
      if (claims.get(id)?.token !== token) return false
      claims.delete(id)
      return true
    },
    get size() {
      return claims.size
    },
    values: () => claims.values(),
  }
}
