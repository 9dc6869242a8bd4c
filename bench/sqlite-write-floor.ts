/**
 * What SQLite itself charges for a record, with no HTTP and no layer: the floor under a SQLite
 * first request. Inserts records shaped as the store writes them into a table of `--records`
 * rows, in transactions of 1 to 50 (the group commit's sizes under load), and reports the
 * insert's and the COMMIT's microseconds per record. Two layouts (the store's unique index on
 * (scope, key) text, and an index on a 52-bit integer hash of the key) and two places (the
 * benchmark's temporary folder, and /dev/shm when there is one, to show the disk's share).
 *
 *   node --import tsx bench/sqlite-write-floor.ts [--records 100000] [--seconds 1.5]
 *
 * Bounded: each cell runs for `--seconds`; files go in a temporary folder removed at exit.
 */
import { createHash, randomUUID } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import Database from 'better-sqlite3'
import { installExitHandlers, onCleanup } from './lib/processes.js'
import { formatNumber, markdownTable } from './lib/table.js'

type Layout = 'text-index' | 'integer-hash-index'

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '100000' },
    seconds: { type: 'string', default: '1.5' },
  },
})
const records = Number(values.records)
const seconds = Number(values.seconds)
if (!Number.isSafeInteger(records) || records < 0 || records > 10_000_000) {
  throw new Error(`--records must be an integer from 0 to 10000000, got ${values.records}`)
}
if (!(seconds > 0 && seconds <= 60)) throw new Error(`--seconds must be in (0, 60]`)

const BATCHES = [1, 10, 25, 50] as const
const fingerprint = createHash('sha256').update('body').digest()
const body = Buffer.from('{"id":"ord_123","status":"created","amount":42}')
const headers = JSON.stringify({ 'content-type': 'application/json; charset=utf-8' })

function keyHash(key: string): number {
  return Number(BigInt.asIntN(52, BigInt(`0x${key.replaceAll('-', '').slice(0, 16)}`)))
}

/** One layout's cells, one batch size each; between them, Ctrl-C gets its turn. */
async function measure(folder: string, layout: Layout): Promise<string[][]> {
  const file = join(folder, `${layout}.db`)
  const db = new Database(file)
  try {
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    // The store checkpoints on a worker thread, not in its commits: no checkpoint runs inside
    // the measured ones (each cell starts on an empty WAL instead).
    db.pragma('wal_autocheckpoint = 0')
    const hashed = layout === 'integer-hash-index'
    // One table for both layouts: the text layout leaves `key_hash` NULL (a byte a row).
    db.exec(`CREATE TABLE records (id INTEGER PRIMARY KEY, scope TEXT NOT NULL, key TEXT NOT NULL,
      fingerprint BLOB NOT NULL, expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL,
      status INTEGER NOT NULL, headers TEXT NOT NULL, body BLOB NOT NULL, request_id TEXT NOT NULL,
      key_hash INTEGER)`)
    db.exec(
      hashed
        ? 'CREATE INDEX records_hash ON records (key_hash)'
        : 'CREATE UNIQUE INDEX records_key ON records (scope, key)',
    )
    const insert = db.prepare<
      [string, string, Buffer, number, number, number, string, Buffer, string, number | null]
    >(`INSERT INTO records (scope, key, fingerprint, expires_at, created_at, status, headers, body,
         request_id, key_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    const row = () => {
      const key = randomUUID()
      const now = Date.now()
      return [
        'acct_1',
        key,
        fingerprint,
        now + 86_400_000,
        now,
        201,
        headers,
        body,
        `req_${key.slice(0, 8)}`,
        hashed ? keyHash(key) : null,
      ] as const
    }
    const fill = db.transaction((count: number) => {
      for (let i = 0; i < count; i++) insert.run(...row())
    })
    for (let done = 0; done < records; done += 10_000) fill(Math.min(10_000, records - done))
    const cells: string[][] = []
    for (const batch of BATCHES) {
      await nextTurn()
      db.pragma('wal_checkpoint(TRUNCATE)')
      let insertNs = 0n
      let commitNs = 0n
      let written = 0
      const until = Date.now() + seconds * 1_000
      while (Date.now() < until) {
        const rows = Array.from({ length: batch }, row)
        const began = process.hrtime.bigint()
        db.exec('BEGIN IMMEDIATE')
        for (const values of rows) insert.run(...values)
        const inserted = process.hrtime.bigint()
        db.exec('COMMIT')
        const committed = process.hrtime.bigint()
        insertNs += inserted - began
        commitNs += committed - inserted
        written += batch
      }
      const perRecord = (ns: bigint) => formatNumber(Number(ns) / written / 1_000, 1)
      cells.push([layout, String(batch), perRecord(insertNs), perRecord(commitNs)])
    }
    return cells
  } finally {
    db.close()
  }
}

const places = [{ name: `temporary folder (${tmpdir()})`, root: tmpdir() }]
if (existsSync('/dev/shm')) places.push({ name: 'tmpfs (/dev/shm)', root: '/dev/shm' })

installExitHandlers()

console.log(
  `## SQLite's own cost per record (${formatNumber(records)} records in the table, WAL, synchronous = NORMAL)\n`,
)
for (const place of places) {
  const folder = mkdtempSync(join(place.root, 'ticksupply-write-floor-'))
  onCleanup(() => {
    rmSync(folder, { recursive: true, force: true })
  })
  const rows = [
    ...(await measure(folder, 'text-index')),
    ...(await measure(folder, 'integer-hash-index')),
  ]
  console.log(`### ${place.name}\n`)
  console.log(
    markdownTable(
      [
        { title: 'layout' },
        { title: 'records per commit', align: 'right' },
        { title: 'INSERT µs / record', align: 'right' },
        { title: 'COMMIT µs / record', align: 'right' },
      ],
      rows,
    ),
  )
  console.log()
}
