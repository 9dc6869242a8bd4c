import type Database from 'better-sqlite3'
import { SQLITE_KEY_HASH_FUNCTION, sqliteKeyHash } from './sqlite-key-hash.js'

/**
 * Creates the records table, or brings one written by an earlier version up to date.
 *
 * A record is written once, completed, in the order requests complete: a rowid table, so that
 * every insert appends to the table's B-tree, and one index on an integer hash of (scope, key)
 * for the look-ups, which compare the scope and the key too (decision 0013). No key text can
 * reach another scope. No index on the expiry: rows arrive in (nearly) expiry order, so the
 * purge reads the oldest ones by rowid. A `WITHOUT ROWID` table keyed by (scope, key), as the
 * first version had, puts every whole row at a random place in the tree, which made a write cost
 * half again as much; a unique index on the (scope, key) text, as the second had, a third more
 * than the hash's (docs/benchmarks.md).
 */
/** The columns of each layout, the current one first. */
const CURRENT = [
  'id',
  'scope',
  'key',
  'fingerprint',
  'expires_at',
  'created_at',
  'status',
  'headers',
  'body',
  'request_id',
  'key_hash',
]
const SECOND = CURRENT.filter((column) => column !== 'key_hash')
const FIRST = [
  'scope',
  'key',
  'fingerprint',
  'state',
  'token',
  'lease_expires_at',
  'expires_at',
  'created_at',
  'response_status',
  'response_headers',
  'response_body',
  'original_request_id',
]
const LAYOUTS = [CURRENT, SECOND, FIRST]

export function ensureSqliteSchema(db: Database.Database, table: string): void {
  const columns = db.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${table}')`)
  const existing = new Set(columns.all().map((column) => column.name))
  const create = (name: string) => `
    CREATE TABLE ${name} (
      id INTEGER PRIMARY KEY,
      scope TEXT NOT NULL,
      key TEXT NOT NULL,
      fingerprint BLOB NOT NULL,
      expires_at INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      status INTEGER NOT NULL,
      headers TEXT NOT NULL,
      body BLOB NOT NULL,
      request_id TEXT NOT NULL,
      key_hash INTEGER NOT NULL
    );
    CREATE INDEX ${name}_key_hash ON ${name} (key_hash);`
  if (existing.size === 0) {
    db.exec(create(table))
    return
  }
  const layout = LAYOUTS.find((columns) => columns.every((column) => existing.has(column)))
  if (layout === undefined || existing.size !== layout.length) {
    // Not a table of ours: left as it is, and the store refuses to start on it.
    throw new TypeError(
      `The table ${table} is not an idempotency records table (its columns: ${[...existing].join(', ')}): give the store another \`tableName\`.`,
    )
  }
  if (layout === CURRENT) return
  db.function(SQLITE_KEY_HASH_FUNCTION, { deterministic: true }, (scope, key) =>
    sqliteKeyHash(String(scope), String(key)),
  )
  db.transaction(() => {
    if (layout === FIRST) {
      // The first version: claims were rows too. Its completed records are kept (their replays
      // are owed for the rest of their life), oldest first so that rowids follow expiry; its
      // claims belonged to a process that is gone.
      db.exec(`ALTER TABLE ${table} RENAME TO ${table}_v1`)
      db.exec(create(table))
      db.exec(`
        INSERT INTO ${table} (scope, key, fingerprint, expires_at, created_at, status, headers,
                              body, request_id, key_hash)
        SELECT scope, key, unhex(fingerprint), expires_at, created_at, response_status,
               coalesce(response_headers, '{}'), coalesce(response_body, x''),
               coalesce(original_request_id, ''), ${SQLITE_KEY_HASH_FUNCTION}(scope, key)
          FROM ${table}_v1 WHERE state = 'completed' ORDER BY expires_at`)
      db.exec(`DROP TABLE ${table}_v1`)
      return
    }
    // The second version: the same rows, under a unique index on the (scope, key) text. The
    // rows stay where they are (the purge's order); the index is replaced.
    db.exec(`
      ALTER TABLE ${table} ADD COLUMN key_hash INTEGER NOT NULL DEFAULT 0;
      UPDATE ${table} SET key_hash = ${SQLITE_KEY_HASH_FUNCTION}(scope, key);
      DROP INDEX IF EXISTS ${table}_key;
      CREATE INDEX ${table}_key_hash ON ${table} (key_hash);`)
  }).immediate()
}
