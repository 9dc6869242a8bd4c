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
  {
    id: 10,
    name: 'export schemas',
    sql: `
      -- version is the latest published version; draft the unpublished one (JSON), if any.
      CREATE TABLE export_schemas (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts (id),
        name TEXT NOT NULL,
        stream_category TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        version INTEGER NOT NULL,
        draft TEXT,
        UNIQUE (account_id, stream_category, name)
      );
      CREATE INDEX export_schemas_by_account ON export_schemas (account_id, created_at, id);
      -- Every published version (columns, unfold, derive as JSON); exports snapshot one.
      CREATE TABLE export_schema_versions (
        schema_id TEXT NOT NULL REFERENCES export_schemas (id),
        version INTEGER NOT NULL,
        definition TEXT NOT NULL,
        published_at BIGINT NOT NULL,
        PRIMARY KEY (schema_id, version)
      );
    `,
  },
  {
    id: 11,
    name: 'exports and their artifacts',
    sql: `
      -- The export jobs are also the worker queue: a worker claims a job by setting
      -- worker_token and worker_lease_expires_at (epoch ms) in one conditional UPDATE, and
      -- renews the lease while it runs; a lapsed lease lets another worker take the job over.
      -- Times of the data range are int64 nanoseconds; ranges (JSON) are the subscription's
      -- spans clipped to the range, snapshotted with the schema when the job is created.
      CREATE TABLE exports (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts (id),
        datastream_id BIGINT NOT NULL REFERENCES datastreams (id),
        start_time_ns BIGINT NOT NULL,
        end_time_ns BIGINT NOT NULL,
        format TEXT NOT NULL CHECK (format IN ('csv', 'parquet')),
        format_options TEXT NOT NULL,
        schema_snapshot TEXT NOT NULL,
        ranges TEXT NOT NULL,
        status TEXT NOT NULL
          CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
        reason TEXT,
        created_at BIGINT NOT NULL,
        started_at BIGINT,
        finished_at BIGINT,
        attempts INTEGER NOT NULL DEFAULT 0,
        worker_token TEXT,
        worker_lease_expires_at BIGINT
      );
      CREATE INDEX exports_newest ON exports (account_id, created_at, id);
      CREATE INDEX exports_queue ON exports (status, created_at, id);
      CREATE INDEX exports_by_worker_token ON exports (worker_token);
      CREATE TABLE export_artifacts (
        id TEXT PRIMARY KEY,
        export_id TEXT NOT NULL REFERENCES exports (id),
        position INTEGER NOT NULL,
        filename TEXT NOT NULL,
        storage_key TEXT NOT NULL,
        bytes BIGINT NOT NULL,
        created_at BIGINT NOT NULL
      );
      CREATE INDEX export_artifacts_by_export ON export_artifacts (export_id, position);
    `,
  },
  {
    id: 12,
    name: 'server secrets',
    sql: `
      -- Secrets the server makes for itself at first start (the download-link signing key),
      -- shared by every instance on this database.
      CREATE TABLE server_secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        created_at BIGINT NOT NULL
      );
    `,
  },
  {
    id: 20,
    name: 'rate limit buckets',
    sql: `
      -- One token bucket per (account, window); see domain/token-bucket.ts. level counts
      -- 1/window_ms tokens (integers only), as of updated_at (epoch ms).
      CREATE TABLE rate_limits (
        account_id TEXT NOT NULL,
        window_ms BIGINT NOT NULL,
        level BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (account_id, window_ms)
      );
    `,
  },
  {
    id: 21,
    name: 'billing grace period',
    sql: `
      -- Set only while access_status is GRACE: when the grace ends (epoch ms).
      ALTER TABLE accounts ADD COLUMN grace_until BIGINT;
    `,
  },
]

export interface MigrationReport {
  /**
   * Migrations recorded in the database that this version does not have: a newer version
   * migrated it. This one runs on it as it is (every migration adds; none takes away what an
   * older version reads), so that a rollback of a deployment starts; the server warns.
   */
  readonly unknownMigrations: readonly number[]
}

/**
 * Applies the migrations not yet applied, then `seed`, in one transaction. On PostgreSQL an
 * advisory lock makes instances that start together take turns: the first migrates, the rest
 * find nothing left to do. (SQLite's BEGIN IMMEDIATE serialises the same way.)
 */
export async function migrate(
  db: Database,
  now: number,
  seed: (tx: Queryable) => Promise<void> = () => Promise.resolve(),
): Promise<MigrationReport> {
  return db.transaction(async (tx) => {
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
    const known = new Set(MIGRATIONS.map((migration) => migration.id))
    return { unknownMigrations: [...applied].filter((id) => !known.has(id)).sort((a, b) => a - b) }
  })
}

function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*$/m)
    .map((statement) => statement.replace(/^\s*--.*$/gm, '').trim())
    .filter((statement) => statement !== '')
}
