import type { Database, Queryable } from './database.js'

/**
 * The schema, in steps that only ever get appended. Portable SQL: BIGINT for epoch
 * milliseconds and int64 ids, TEXT for the rest, so that one set serves SQLite and PostgreSQL.
 */
export const MIGRATIONS: readonly {
  readonly id: number
  readonly name: string
  readonly sql: string
}[] = [
  {
    id: 1,
    name: 'accounts and api keys',
    sql: `
      CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        access_status TEXT NOT NULL DEFAULT 'ACTIVE'
          CHECK (access_status IN ('ACTIVE', 'TRIALING', 'GRACE', 'SUSPENDED', 'NONE')),
        plan_code TEXT NOT NULL DEFAULT 'starter',
        created_at BIGINT NOT NULL
      );
      -- Keys are stored only as SHA-256 digests; the key itself is shown once, at creation.
      CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts (id),
        key_hash TEXT NOT NULL UNIQUE,
        key_prefix TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
      );
    `,
  },
  {
    id: 2,
    name: 'catalog',
    sql: `
      CREATE TABLE exchanges (
        code TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        position INTEGER NOT NULL
      );
      CREATE TABLE instruments (
        exchange TEXT NOT NULL REFERENCES exchanges (code),
        symbol TEXT NOT NULL,
        base TEXT NOT NULL,
        quote TEXT NOT NULL,
        instrument_type TEXT NOT NULL,
        PRIMARY KEY (exchange, symbol)
      );
      CREATE TABLE datastreams (
        id BIGINT PRIMARY KEY,
        exchange TEXT NOT NULL,
        instrument TEXT NOT NULL,
        stream_type TEXT NOT NULL,
        wire_format TEXT NOT NULL,
        FOREIGN KEY (exchange, instrument) REFERENCES instruments (exchange, symbol)
      );
      CREATE INDEX datastreams_by_instrument ON datastreams (exchange, instrument, stream_type);
    `,
  },
  {
    id: 3,
    name: 'subscriptions and spans',
    sql: `
      -- One row per (account, datastream): re-subscribing after a delete reuses it.
      CREATE TABLE subscriptions (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts (id),
        datastream_id BIGINT NOT NULL REFERENCES datastreams (id),
        status TEXT NOT NULL CHECK (status IN ('active', 'paused', 'deleted')),
        created_at BIGINT NOT NULL,
        UNIQUE (account_id, datastream_id)
      );
      CREATE INDEX subscriptions_newest ON subscriptions (account_id, created_at, id);
      CREATE TABLE spans (
        id TEXT PRIMARY KEY,
        subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
        started_at BIGINT NOT NULL,
        ended_at BIGINT
      );
      CREATE INDEX spans_by_subscription ON spans (subscription_id, started_at);
    `,
  },
]

/**
 * Applies the migrations not yet applied, then `seed`, in one transaction. On PostgreSQL an
 * advisory lock makes instances that start together take turns: the first migrates, the rest
 * find nothing left to do. (SQLite's BEGIN IMMEDIATE serialises the same way.)
 */
export async function migrate(
  db: Database,
  now: number,
  seed: (tx: Queryable) => Promise<void> = () => Promise.resolve(),
): Promise<void> {
  await db.transaction(async (tx) => {
    if (db.dialect === 'postgres') {
      await tx.get(`SELECT pg_advisory_xact_lock(hashtext('ticksupply migrations'))`)
    }
    await tx.run(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
    )
    const applied = new Set(
      (await tx.all<{ id: number | string }>('SELECT id FROM schema_migrations')).map((row) =>
        Number(row.id),
      ),
    )
    for (const migration of [...MIGRATIONS].sort((a, b) => a.id - b.id)) {
      if (applied.has(migration.id)) continue
      for (const statement of splitStatements(migration.sql)) await tx.run(statement)
      await tx.run('INSERT INTO schema_migrations (id, name, applied_at) VALUES (?, ?, ?)', [
        migration.id,
        migration.name,
        now,
      ])
    }
    await seed(tx)
  })
}

function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*$/m)
    .map((statement) => statement.replace(/^\s*--.*$/gm, '').trim())
    .filter((statement) => statement !== '')
}
