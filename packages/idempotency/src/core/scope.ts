/** The longest scope the engine takes: every store keeps it in one index entry with the key. */
export const MAX_SCOPE_LENGTH = 512

// NUL, which PostgreSQL's text cannot hold, and a surrogate without its pair, which no UTF-8
// store can: both would come back as another scope's text, or not at all.
const UNREPRESENTABLE = /[\0\p{Cs}]/u

/**
 * Checks the scope an app's `scope` function gave: text every store keeps exact, so that two
 * accounts never share a record. A scope that fails is a fault of the app, not of the request.
 *
 * @throws {TypeError}
 */
export function checkScope(scope: unknown): asserts scope is string {
  if (typeof scope !== 'string') {
    throw new TypeError(`Expected the scope to be a string, got ${typeof scope}.`)
  }
  if (scope.length > MAX_SCOPE_LENGTH) {
    throw new TypeError(
      `Expected the scope to be at most ${String(MAX_SCOPE_LENGTH)} characters, got ${String(scope.length)}.`,
    )
  }
  if (UNREPRESENTABLE.test(scope)) {
    throw new TypeError('Expected the scope to be text without NUL or unpaired surrogates.')
  }
}
