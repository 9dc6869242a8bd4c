import type { Pool } from 'pg'
import { withPostgresTransaction } from './postgres-transaction.js'

/**
 * Creates (or brings up to date) the records table and the instances table, under an advisory
 * lock so that instances starting together do not race on `CREATE TABLE IF NOT EXISTS`.
 *
 * A record in progress points to the instance that holds it (`instance_id`); the instance's
 * row says until when it vouches for its claims. Records written by an earlier version carry
 * a lease of their own instead (`lease_expires_at`), which is still honoured.
 */
export async function ensurePostgresSchema(pool: Pool, table: string): Promise<void> {
  await withPostgresTransaction(pool, async ({ client }) => {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`ticksupply schema ${table}`])
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${table} (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('in_progress', 'completed')),
        token TEXT,
        instance_id TEXT,
        lease_expires_at BIGINT,
        expires_at BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        response_status INTEGER,
        response_headers JSONB,
        response_body BYTEA,
        original_request_id TEXT,
        PRIMARY KEY (scope, key),
        CONSTRAINT ${table}_held CHECK (
          (state = 'in_progress') =
          (token IS NOT NULL AND (instance_id IS NOT NULL OR lease_expires_at IS NOT NULL))),
        CONSTRAINT ${table}_answered CHECK ((state = 'completed') = (response_status IS NOT NULL))
      )`)
    await client.query(`ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS instance_id TEXT`)
    // The first version's check demanded a lease on every claim; a claim now may point to its
    // instance instead. Its unnamed constraint is found by what it says.
    const old = await client.query<{ conname: string }>(
      `SELECT conname FROM pg_constraint
        WHERE conrelid = $1::regclass AND contype = 'c' AND conname <> $2
          AND pg_get_constraintdef(oid) LIKE '%lease_expires_at IS NOT NULL%'`,
      [table, `${table}_held`],
    )
    for (const { conname } of old.rows) {
      await client.query(`ALTER TABLE ${table} DROP CONSTRAINT "${conname.replaceAll('"', '""')}"`)
    }
    if (old.rows.length > 0) {
      await client.query(`
        ALTER TABLE ${table} ADD CONSTRAINT ${table}_held CHECK (
          (state = 'in_progress') =
          (token IS NOT NULL AND (instance_id IS NOT NULL OR lease_expires_at IS NOT NULL)))`)
    }
    await client.query(`CREATE INDEX IF NOT EXISTS ${table}_expires_at ON ${table} (expires_at)`)
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${table}_instances (
        id TEXT PRIMARY KEY,
        lock_key INTEGER NOT NULL,
        backend_pid INTEGER,
        lease_expires_at BIGINT NOT NULL,
        started_at BIGINT NOT NULL
      )`)
  })
}
