/**
 * A SQLite file deleted or replaced under an open connection: WAL-mode SQLite would go on
 * committing into the unlinked inode. The connection notices at the next commit and refuses,
 * with a typed error, everything after it.
 */
import { copyFileSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import type { SqliteConnection } from '@ticksupply/idempotency/stores/sqlite'
import {
  SqliteFileMovedError,
  SqliteFileUncheckableError,
  openSqliteConnection,
} from '@ticksupply/idempotency/stores/sqlite'

const dirs: string[] = []
const connections: SqliteConnection[] = []

afterEach(() => {
  for (const connection of connections.splice(0)) {
    if (connection.database.open) connection.close()
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function open(): { connection: SqliteConnection; filename: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'idempotency-sqlite-identity-'))
  dirs.push(dir)
  const filename = join(dir, 'records.db')
  const connection = openSqliteConnection(filename)
  connections.push(connection)
  connection.database.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)')
  return { connection, filename, dir }
}

const insert =
  (connection: SqliteConnection, id: number) =>
  (database = connection.database) =>
    database.prepare('INSERT INTO things (id) VALUES (?)').run(id).changes

/** Every way a write can reach the file, each expected to be refused. */
function everyWrite(connection: SqliteConnection, id: number): Promise<unknown>[] {
  return [
    connection.transaction((tx) => Promise.resolve(insert(connection, id)(tx.database))),
    connection.write(insert(connection, id + 1)),
    connection.exclusive(insert(connection, id + 2)),
  ]
}

async function rejections(promises: Promise<unknown>[]): Promise<string[]> {
  const settled = await Promise.allSettled(promises)
  return settled.map((result) =>
    result.status === 'rejected' && result.reason instanceof SqliteFileMovedError
      ? result.reason.code
      : `not refused: ${result.status}`,
  )
}

const REFUSED = 'SQLITE_READONLY_DBMOVED'

describe('a SQLite file that moved under its connection', () => {
  it('commits normally while the path still names the opened file', async () => {
    const { connection } = open()
    expect(await Promise.all(everyWrite(connection, 1))).toEqual([1, 1, 1])
    expect(
      await connection.read((db) => db.prepare('SELECT COUNT(*) AS n FROM things').get()),
    ).toEqual({ n: 3 })
  })

  it('refuses every write, and then reads, once the file is deleted', async () => {
    const { connection, filename } = open()
    unlinkSync(filename)
    expect(await rejections(everyWrite(connection, 10))).toEqual([REFUSED, REFUSED, REFUSED])
    await expect(connection.read((db) => db.prepare('SELECT 1').get())).rejects.toBeInstanceOf(
      SqliteFileMovedError,
    )
  })

  it('refuses writes once another file is moved over the path, and commits none into either', async () => {
    const { connection, filename, dir } = open()
    await connection.write(insert(connection, 1))
    // A restore from a backup: a copy of the file, moved over the original.
    const copy = join(dir, 'restored.db')
    connection.database.pragma('wal_checkpoint(TRUNCATE)')
    copyFileSync(filename, copy)
    renameSync(copy, filename)
    expect(await rejections(everyWrite(connection, 20))).toEqual([REFUSED, REFUSED, REFUSED])
    connection.close()
    const restored = new Database(filename, { readonly: true })
    try {
      expect(restored.prepare('SELECT id FROM things ORDER BY id').all()).toEqual([{ id: 1 }])
    } finally {
      restored.close()
    }
  })

  it('refuses writes while its path cannot be looked at, with a database error, and commits again once it can', async () => {
    const { connection, dir } = open()
    await connection.write(insert(connection, 40))
    // The folder swapped for a plain file: a stat of the path fails (ENOTDIR), for root too,
    // without saying the file is gone.
    const aside = `${dir}-aside`
    renameSync(dir, aside)
    writeFileSync(dir, 'not a folder')
    const settled = await Promise.allSettled(everyWrite(connection, 41))
    expect(
      settled.map((result) =>
        result.status === 'rejected' && result.reason instanceof SqliteFileUncheckableError
          ? result.reason.code
          : `not refused: ${result.status}`,
      ),
    ).toEqual(['SQLITE_IOERR_FSTAT', 'SQLITE_IOERR_FSTAT', 'SQLITE_IOERR_FSTAT'])
    unlinkSync(dir)
    renameSync(aside, dir)
    expect(await connection.write(insert(connection, 50))).toBe(1)
    expect(
      await connection.read((db) => db.prepare('SELECT COUNT(*) AS n FROM things').get()),
    ).toEqual({ n: 2 })
  })

  it('rolls back a transaction that was open when the file went away', async () => {
    const { connection, filename } = open()
    let inserted = 0
    const committing = connection.transaction(async (tx) => {
      inserted = insert(connection, 30)(tx.database)
      unlinkSync(filename)
      await Promise.resolve()
    })
    await expect(committing).rejects.toBeInstanceOf(SqliteFileMovedError)
    expect(inserted).toBe(1)
    expect(connection.database.inTransaction).toBe(false)
  })
})
