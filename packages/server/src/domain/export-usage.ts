import type { Queryable } from '../db/database.js'

/**
 * The bytes of the files of the account's exports that succeeded in `[fromMs, toMs)` (epoch
 * milliseconds of `finished_at`): what billing counts as export usage in a period. Canceled and
 * failed exports count nothing; a deleted export stops counting with its files.
 */
export async function exportBytesInPeriod(
  db: Queryable,
  accountId: string,
  fromMs: number,
  toMs: number,
): Promise<number> {
  const row = await db.get<{ bytes: number | string | bigint | null }>(
    `SELECT SUM(a.bytes) AS bytes
       FROM export_artifacts a JOIN exports e ON e.id = a.export_id
      WHERE e.account_id = ? AND e.status = 'succeeded' AND e.finished_at >= ? AND e.finished_at < ?`,
    [accountId, fromMs, toMs],
  )
  // SUM is NULL without rows; PostgreSQL answers NUMERIC, which arrives as text.
  return row?.bytes === null || row?.bytes === undefined ? 0 : Number(row.bytes)
}
