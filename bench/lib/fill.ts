/**
 * Bulk fills of the stores' record tables, in their own layout
 * (packages/idempotency/src/store/sqlite/sqlite-schema.ts, store/postgres/postgres-schema.ts):
 * completed records with random UUID keys of one scope, a 32-byte fingerprint, the JSON
 * content type and a 45-byte body, as `POST /orders` leaves them. Plain SQL, not HTTP: millions
 * of rows in seconds.
 */
import type Database from 'better-sqlite3'
import type { Pool } from 'pg'
import { sqliteKeyHash } from '@ticksupply/idempotency/stores/sqlite'

export const FILL_SCOPE = 'bench-account'
const CHUNK = 200_000

export interface FillTimes {
  readonly createdAt: number
  readonly expiresAt: number
}

/** Appends `count` completed records to the SQLite table, in transactions of 200,000. */
export function fillSqlite(
  db: Database.Database,
  table: string,
  count: number,
  times: FillTimes,
): void {
  // `r` is materialized: inlined, each use of `h` would draw its own random blob, and a key
  // would be hashed as another.
  db.function('bench_key_hash', { deterministic: true }, (scope, key) =>
    sqliteKeyHash(String(scope), String(key)),
  )
  const insert = db.prepare<{ n: number; createdAt: number; expiresAt: number }>(`
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < @n),
    r AS MATERIALIZED (SELECT lower(hex(randomblob(16))) AS h FROM n),
    k AS (SELECT h, substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-8' ||
                    substr(h, 18, 3) || '-' || substr(h, 21, 12) AS key FROM r)
    INSERT INTO ${table} (scope, key, fingerprint, expires_at, created_at, status, headers, body,
                          request_id, key_hash)
    SELECT '${FILL_SCOPE}', key, randomblob(32), @expiresAt, @createdAt, 201,
           '{"content-type":"application/json; charset=utf-8"}',
           CAST('{"id":"' || substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) ||
                '-' || substr(h, 17, 4) || '-' || substr(h, 21, 12) || '"}' AS BLOB),
           'req_' || substr(h, 1, 16), bench_key_hash('${FILL_SCOPE}', key)
      FROM k`)
  for (let done = 0; done < count; done += CHUNK) {
    const n = Math.min(CHUNK, count - done)
    db.transaction(() => insert.run({ n, ...times }))()
  }
  db.pragma('wal_checkpoint(TRUNCATE)')
}

/** Inserts `count` completed records into the PostgreSQL table, one commit per 200,000. */
export async function fillPostgres(
  pool: Pool,
  table: string,
  count: number,
  times: FillTimes,
): Promise<void> {
  for (let done = 0; done < count; done += CHUNK) {
    const n = Math.min(CHUNK, count - done)
    await pool.query(
      `INSERT INTO ${table} (scope, key, fingerprint, state, expires_at, created_at,
                             response_status, response_headers, response_body,
                             original_request_id)
       SELECT '${FILL_SCOPE}', gen_random_uuid()::text,
              md5(random()::text) || md5(random()::text), 'completed', $1, $2, 201,
              '{"content-type": "application/json; charset=utf-8"}'::jsonb,
              convert_to('{"id":"' || gen_random_uuid()::text || '"}', 'UTF8'),
              'req_' || substr(md5(random()::text), 1, 16)
         FROM generate_series(1, $3::int)`,
      [times.expiresAt, times.createdAt, n],
    )
  }
  await pool.query(`ANALYZE ${table}`)
}
