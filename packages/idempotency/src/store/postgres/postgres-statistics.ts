import type { Pool } from 'pg'

/**
 * Keeps the planner's picture of the records table true while the table grows.
 *
 * The store's statements are prepared once per connection, and PostgreSQL keeps a prepared
 * statement's generic plan until the table's statistics change. A plan made while the table
 * was small joins each batch to the whole table (a sequential scan and a hash join), which is
 * right for a hundred rows and ruinous for a hundred thousand; autovacuum refreshes the
 * statistics only every minute at best, and a new deployment's table can grow by a hundred
 * thousand rows in that minute. So the store analyzes the table itself each time the rows it
 * inserted since the last analysis reach the table's size then (and at the first
 * `FIRST_ANALYSIS_AFTER` rows): a handful of runs on the way to millions of rows, each of which
 * replans every session's statements on the table. See docs/decisions/0012.
 */
export interface TableStatistics {
  /** This instance inserted `count` rows. */
  inserted(count: number): void
  /** Resolves once no analysis is running. */
  settle(): Promise<void>
}

/** Rows inserted into an empty (or never analyzed) table before its first analysis. */
export const FIRST_ANALYSIS_AFTER = 500

export async function trackTableStatistics(pool: Pool, table: string): Promise<TableStatistics> {
  const readRows = async (): Promise<number> => {
    const { rows } = await pool.query<{ rows: string }>(
      // -1 until the table's first analysis.
      `SELECT greatest(reltuples, 0)::bigint AS rows FROM pg_class WHERE oid = $1::regclass`,
      [table],
    )
    return Number(rows[0]?.rows ?? 0)
  }
  let rowsAtAnalysis = await readRows()
  let insertedSince = 0
  let running: Promise<void> | undefined

  const analyze = async () => {
    insertedSince = 0
    try {
      // A role that does not own the table gets a warning, not an error: the statistics stay
      // autovacuum's to keep.
      await pool.query(`ANALYZE ${table}`)
      rowsAtAnalysis = await readRows()
    } catch {
      // The database is unreachable or the statement was cancelled: the plans stay as they
      // were until as many rows again have gone in (not at every batch meanwhile).
    }
  }

  return {
    inserted(count) {
      insertedSince += count
      if (running !== undefined) return
      if (insertedSince < Math.max(FIRST_ANALYSIS_AFTER, rowsAtAnalysis)) return
      running = analyze().finally(() => {
        running = undefined
      })
    },
    async settle() {
      await running
    },
  }
}
