import { recordId } from '../settle-listeners.js'

/**
 * Names the Redis keys of a store's records: `<prefix>{<scope length>:<scope>:<key>}`.
 *
 * - The scope is length-framed (`recordId`), so no (scope, key) pair spells another's key,
 *   whatever characters an account id or a key holds.
 * - The framed id is the key's hash tag: on Redis Cluster every key of one record lands in one
 *   slot. A record is one hash today, but a key the store adds for a record later (a lock, a
 *   body kept apart) must share the slot, since a script may only touch keys of one slot. A
 *   scope holding `}` shortens the tag (Redis hashes up to the first `}`), but the same way for
 *   every key of the record, so they still share a slot; the full id still names the key.
 * - The prefix may hold no braces: a tag in the prefix would put every record in one slot.
 */
export interface RedisKeys {
  readonly prefix: string
  record(scope: string, key: string): string
  /** The record id (as `recordId`) of a record's key; undefined for a key of another prefix. */
  idOf(redisKey: string): string | undefined
  /** A SCAN `MATCH` pattern for this store's records, and nothing else. */
  readonly pattern: string
}

export function createRedisKeys(prefix: string): RedisKeys {
  if (/[{}]/.test(prefix)) {
    throw new TypeError(
      `Expected \`prefix\` to hold no braces (they would choose the cluster slot), got ${prefix}.`,
    )
  }
  const escaped = prefix.replace(/[*?[\]\\]/g, (character) => `\\${character}`)
  return {
    prefix,
    record: (scope, key) => `${prefix}{${recordId(scope, key)}}`,
    idOf(redisKey) {
      if (!redisKey.startsWith(`${prefix}{`) || !redisKey.endsWith('}')) return undefined
      return redisKey.slice(prefix.length + 1, -1)
    },
    pattern: `${escaped}{*}`,
  }
}
