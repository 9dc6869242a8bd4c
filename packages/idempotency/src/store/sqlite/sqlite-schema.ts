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
/** Each layout's columns and their declared types, the current one first. */
const CURRENT: Readonly<Record<string, string>> = {
  id: 'INTEGER',
  scope: 'TEXT',
  key: 'TEXT',
  fingerprint: 'BLOB',
  expires_at: 'INTEGER',
  created_at: 'INTEGER',
  status: 'INTEGER',
  headers: 'TEXT',
  body: 'BLOB',
  request_id: 'TEXT',
  key_hash: 'INTEGER',
}
const SECOND = Object.fromEntries(Object.entries(CURRENT).filter(([name]) => name !== 'key_hash'))
const FIRST: Readonly<Record<string, string>> = {
  scope: 'TEXT',
  key: 'TEXT',
  fingerprint: 'TEXT',
  state: 'TEXT',
  token: 'TEXT',
  lease_expires_at: 'INTEGER',
  expires_at: 'INTEGER',
  created_at: 'INTEGER',
  response_status: 'INTEGER',
  response_headers: 'TEXT',
  response_body: 'BLOB',
  original_request_id: 'TEXT',
}
const LAYOUTS = [CURRENT, SECOND, FIRST]

export function ensureSqliteSchema(db: Database.Database, table: string): void {
  const columns = db
    .prepare<[], { name: string; type: string }>(
      `SELECT name, type FROM pragma_table_info('${table}')`,
    )
    .all()
  const existing = new Map(columns.map((column) => [column.name, column.type.toUpperCase()]))
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
  const layout = LAYOUTS.find(
    (columns) =>
      Object.keys(columns).length === existing.size &&
      Object.entries(columns).every(([name, type]) => existing.get(name) === type),
  )
  const definition = db
    .prepare<[string], { type: string; sql: string | null }>(
      'SELECT type, sql FROM sqlite_master WHERE name = ?',
    )
    .get(table)
  // The store's own tables: a rowid table (appended to, purged by rowid) of a layout it wrote;
  // the first version's was WITHOUT ROWID.
  const ours =
    layout !== undefined &&
    definition?.type === 'table' &&
    (layout === FIRST || !/WITHOUT\s+ROWID/i.test(definition.sql ?? ''))
  if (!ours) {
    // Left as it is, and the store refuses to start on it.
    throw new TypeError(
      `The ${definition?.type ?? 'table'} ${table} is not an idempotency records table (its columns: ${columns.map((column) => `${column.name} ${column.type}`).join(', ')}): give the store another \`tableName\`.`,
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
