import type { RedisCommander } from './redis-connection.js'
import { text } from './redis-connection.js'

/**
 * Reads the server's `maxmemory-policy` and warns unless it is `noeviction`. Every policy that
 * evicts can drop an idempotency record before its expiry (the `volatile-*` ones too: every
 * record has a TTL), and an evicted record is a key whose operation runs twice. A server that
 * refuses `CONFIG` (managed Redis often does) is not an error: the warning says the policy
 * could not be checked.
 *
 * Resolves the policy, or undefined when it could not be read.
 */
export async function checkMemoryPolicy(
  commander: RedisCommander,
  warn: (message: string) => void,
): Promise<string | undefined> {
  let policy: string | undefined
  try {
    policy = readPolicy(await commander.command(['CONFIG', 'GET', 'maxmemory-policy']))
  } catch (error) {
    warn(
      `@ticksupply/idempotency: could not read Redis's maxmemory-policy (${error instanceof Error ? error.message : String(error)}); make sure it is noeviction, or an evicted record lets its key run twice`,
    )
    return undefined
  }
  if (policy !== undefined && policy !== 'noeviction') {
    warn(
      `@ticksupply/idempotency: Redis's maxmemory-policy is ${policy}: under memory pressure Redis may evict idempotency records, and a key whose record was evicted runs its operation again. Set maxmemory-policy to noeviction.`,
    )
  }
  return policy
}

/** `CONFIG GET` answers a map (RESP3) or a flat list of name, value (RESP2). */
function readPolicy(reply: unknown): string | undefined {
  if (Array.isArray(reply)) return reply.length >= 2 ? text(reply[1]) : undefined
  if (reply instanceof Map) {
    for (const value of reply.values()) return text(value)
    return undefined
  }
  if (typeof reply === 'object' && reply !== null) {
    const values = Object.values(reply)
    return values.length > 0 ? text(values[0]) : undefined
  }
  return undefined
}
