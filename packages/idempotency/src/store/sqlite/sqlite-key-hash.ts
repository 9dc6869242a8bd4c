import { hash } from 'node:crypto'
import { recordId } from '../settle-listeners.js'

/**
 * The integer the records table indexes a (scope, key) by: the first 48 bits of the SHA-256 of
 * the pair, framed so that no two pairs share an input. An index entry is then an integer and a
 * rowid, a sixth of the (scope, key) text's, so a write dirties fewer index pages and a look-up
 * descends fewer levels (decision 0013). Two pairs may share a hash: every look-up also compares
 * the scope and the key. A cryptographic hash, so that no client can make many keys of its own
 * share one value and turn each look-up into a walk along them.
 *
 * Exported for tools that write the table in bulk; it must never change for a table that exists.
 */
export function sqliteKeyHash(scope: string, key: string): number {
  return hash('sha256', recordId(scope, key), 'buffer').readUIntBE(0, 6)
}

/** The SQL function name the schema's migrations compute {@link sqliteKeyHash} with. */
export const SQLITE_KEY_HASH_FUNCTION = 'ticksupply_key_hash'
