/**
 * Where the client keeps the idempotency key of an operation that has not got a definitive
 * answer yet, so that a process that dies mid-operation resumes it with the same key instead
 * of minting a new one (which could run the operation twice).
 *
 * The client calls `set` before the first attempt is sent, `get` when an operation starts
 * with a caller-chosen `operationId`, and `delete` once the operation got a definitive answer
 * (a success or an error that retrying cannot change). A failing store fails the operation
 * before anything is sent.
 */
export interface KeyStore {
  /** The key saved for `operationId`, or undefined when there is none. */
  get(operationId: string): Promise<string | undefined>
  /** Saves `key` for `operationId`; resolves only once the key is durable. */
  set(operationId: string, key: string): Promise<void>
  /** Forgets `operationId`; deleting an unknown id is not an error. */
  delete(operationId: string): Promise<void>
  /**
   * Saves `key` for `operationId` unless a key is saved for it already, in one step, and
   * resolves the key saved (this one, or the one that was there): two processes that start
   * one operation at once then share a key. Optional; without it the client uses `get` and
   * `set`, and only calls within one process share a key.
   */
  add?(operationId: string, key: string): Promise<string>
}

/** A key store in memory: survives retries, not restarts. Useful in tests and short scripts. */
export function createMemoryKeyStore(): KeyStore {
  const keys = new Map<string, string>()
  return {
    add: (operationId, key) => {
      const saved = keys.get(operationId)
      if (saved !== undefined) return Promise.resolve(saved)
      keys.set(operationId, key)
      return Promise.resolve(key)
    },
    get: (operationId) => Promise.resolve(keys.get(operationId)),
    set: (operationId, key) => {
      keys.set(operationId, key)
      return Promise.resolve()
    },
    delete: (operationId) => {
      keys.delete(operationId)
      return Promise.resolve()
    },
  }
}
