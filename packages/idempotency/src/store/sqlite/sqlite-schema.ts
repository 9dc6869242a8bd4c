import type Database from 'better-sqlite3'

/**
 * Creates the records table, or brings one written by an earlier version up to date.
 *
 * A record is written once, completed, in the order requests complete: a rowid table, so that
 * every insert appends to the table's B-tree, and one unique index on (scope, key) for the
 * lookups. The scope and the key are two columns of that index: no key text can reach another
 * scope. No index on the expiry: rows arrive in (nearly) expiry order, so the purge reads the
 * oldest ones by rowid. A `WITHOUT ROWID` table keyed by (scope, key), as the first version had,
 * puts every whole row at a random place in the tree, which made a write cost half again as
 * much (docs/benchmarks.md).
 */
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
      request_id TEXT NOT NULL
    )`
  if (existing.size === 0) {
    db.exec(`${create(table)}; CREATE UNIQUE INDEX ${table}_key ON ${table} (scope, key);`)
    return
  }
  if (!existing.has('token')) return
  // The first version: claims were rows too. Its completed records are kept (their replays are
  // owed for the rest of their life), oldest first so that rowids follow expiry; its claims
  // belonged to a process that is gone.
  db.transaction(() => {
    db.exec(`ALTER TABLE ${table} RENAME TO ${table}_v1`)
    db.exec(`${create(table)}; CREATE UNIQUE INDEX ${table}_key ON ${table} (scope, key);`)
    db.exec(`
      INSERT INTO ${table} (scope, key, fingerprint, expires_at, created_at, status, headers, body,
                            request_id)
      SELECT scope, key, unhex(fingerprint), expires_at, created_at, response_status,
             coalesce(response_headers, '{}'), coalesce(response_body, x''),
             coalesce(original_request_id, '')
        FROM ${table}_v1 WHERE state = 'completed' ORDER BY expires_at`)
    db.exec(`DROP TABLE ${table}_v1`)
  }).immediate()
}
