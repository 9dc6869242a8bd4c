import type { StoreTransaction } from '@ticksupply/idempotency'

export type SqlValue = string | number | bigint | Buffer | null

/**
 * Runs SQL with `?` placeholders. Queries are written once, in the subset of SQL that SQLite and
 * PostgreSQL share; each dialect's implementation adapts placeholders and result types.
 */
export interface Queryable {
  all<Row>(sql: string, params?: readonly SqlValue[]): Promise<Row[]>
  get<Row>(sql: string, params?: readonly SqlValue[]): Promise<Row | undefined>
  /** Resolves the number of rows changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>
}

export interface Transaction extends Queryable {
  /** The same transaction, as the idempotency store joins it to commit the stored response. */
  readonly store: StoreTransaction
}

export interface Database extends Queryable {
  readonly dialect: 'sqlite' | 'postgres'
  /**
   * Runs `fn` in one transaction: commits when it resolves, rolls back when it rejects or when
   * `signal` (the request's deadline) has aborted by then. `durable: false` lets the commit
   * return before it reaches the disk (PostgreSQL's `synchronous_commit = off` for this
   * transaction): for bookkeeping that a database crash may lose a moment of, never for the
   * resources.
   */
  transaction<T>(
    fn: (tx: Transaction) => Promise<T>,
    options?: { readonly signal?: AbortSignal; readonly durable?: boolean },
  ): Promise<T>
  close(): Promise<void>
}

/**
 * The database's own clock, in milliseconds since the epoch, as an SQL expression. A lease that
 * several instances compare (the export worker's) is written and read on this one clock: each
 * instance's own would let one whose clock runs ahead take a job another still holds.
 */
export function databaseNowMs(dialect: Database['dialect']): string {
  return dialect === 'sqlite'
    ? `CAST(unixepoch('subsec') * 1000 AS INTEGER)`
    : `CAST(floor(extract(epoch FROM clock_timestamp()) * 1000) AS BIGINT)`
}
