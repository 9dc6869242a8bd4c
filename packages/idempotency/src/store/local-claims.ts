/** A claim this process holds, as the store keeps it in memory. */
export interface LocalClaim {
  readonly scope: string
  readonly key: string
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
  /**
   * The claim with `token` and its record id: how a completion or a release finds its claim
   * without framing the record id again (the token is the same string every time).
   */
  byToken(token: string): { readonly id: string; readonly claim: LocalClaim } | undefined
  add(id: string, claim: LocalClaim): void
  /** Removes the claim if it still carries `token`; reports whether it did. */
  delete(id: string, token: string): boolean
  readonly size: number
  values(): IterableIterator<LocalClaim>
}

export function createLocalClaims(): LocalClaims {
  const claims = new Map<string, LocalClaim>()
  const tokens = new Map<string, { readonly id: string; readonly claim: LocalClaim }>()
  return {
    get: (id) => claims.get(id),
    byToken: (token) => tokens.get(token),
    add(id, claim) {
      const previous = claims.get(id)
      if (previous !== undefined) tokens.delete(previous.token)
      claims.set(id, claim)
      tokens.set(claim.token, { id, claim })
    },
    delete(id, token) {
      if (claims.get(id)?.token !== token) return false
      claims.delete(id)
      tokens.delete(token)
      return true
    },
    get size() {
      return claims.size
    },
    values: () => claims.values(),
  }
}
