import { execFileSync, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import {
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
} from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { createManualClock } from '@ticksupply/idempotency'
import type { SqliteStore } from '@ticksupply/idempotency/stores/sqlite'
import {
  SqliteStoreOwnedError,
  createSqliteStore,
  openSqliteConnection,
  sqliteKeyHash,
} from '@ticksupply/idempotency/stores/sqlite'
import { outcomeOf, request, response } from '../store-contract.js'
import { openTemporarySqlite } from '../support/sqlite.js'

const HOLD_CLAIM = fileURLToPath(new URL('../fixtures/hold-claim.mjs', import.meta.url))
const TRY_OWN = fileURLToPath(new URL('../fixtures/try-own.mjs', import.meta.url))

/** What another process gets when it tries to own the file: `owned` or `refused <error>`. */
function ownFromAnotherProcess(filename: string, table?: string): string {
  const args = [TRY_OWN, filename, ...(table === undefined ? [] : [table])]
  return execFileSync(process.execPath, args, { encoding: 'utf8' }).trim()
}

function temporaryFile(): { dir: string; filename: string } {
  const dir = mkdtempSync(join(tmpdir(), 'idempotency-sqlite-'))
  return { dir, filename: join(dir, 'records.db') }
}

/** Opens a store on `filename` (as a restarted process would) and claims `key` of `acct`. */
async function claimOnReopen(filename: string, key: string): Promise<string> {
  const connection = openSqliteConnection(filename)
  try {
    const store = createSqliteStore({ connection })
    try {
      return outcomeOf(await store.claim(request({ scope: 'acct', key })))
    } finally {
      store.close()
    }
  } finally {
    connection.close()
  }
}

const stored = response('{"id":1}')
const claimRequest = () => request({ scope: 'acct' })

describe('SQLite store, atomic with the operation', () => {
  it('commits the operation and its completion together', async () => {
    const { connection, store, close } = openTemporarySqlite()
    try {
      connection.database.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)')
      const claim = claimRequest()
      await store.claim(claim)
      await connection.transaction(async (tx) => {
        tx.database.prepare('INSERT INTO things (id) VALUES (1)').run()
        expect(await store.complete(claim, stored, tx)).toBe(true)
      })
      expect(connection.database.prepare('SELECT COUNT(*) AS n FROM things').get()).toEqual({
        n: 1,
      })
      expect((await store.claim({ ...claim, token: randomUUID() })).kind).toBe('replay')
    } finally {
      await close()
    }
  })

  it('rolls back both when the operation fails after completing', async () => {
    const { connection, store, close } = openTemporarySqlite()
    try {
      connection.database.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)')
      const claim = claimRequest()
      await store.claim(claim)
      let woken = 0
      const unsubscribe = store.onSettled?.(claim.scope, claim.key, () => {
        woken++
      })
      await expect(
        connection.transaction(async (tx) => {
          tx.database.prepare('INSERT INTO things (id) VALUES (1)').run()
          await store.complete(claim, stored, tx)
          throw new Error('the operation failed after its completion was written')
        }),
      ).rejects.toThrow('the operation failed')
      unsubscribe?.()
      expect(connection.database.prepare('SELECT COUNT(*) AS n FROM things').get()).toEqual({
        n: 0,
      })
      expect(woken).toBe(0)
      // Still ours and in progress: the claimant can release it.
      expect(await store.claim({ ...claim, token: randomUUID() })).toEqual({ kind: 'in_progress' })
      expect(await store.release(claim)).toBe(true)
    } finally {
      await close()
    }
  })

  it('does not commit when the signal aborted during the operation', async () => {
    const { connection, close } = openTemporarySqlite()
    try {
      connection.database.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)')
      const controller = new AbortController()
      await expect(
        connection.transaction(
          async (tx) => {
            tx.database.prepare('INSERT INTO things (id) VALUES (1)').run()
            controller.abort(new Error('deadline'))
            await Promise.resolve()
          },
          { signal: controller.signal },
        ),
      ).rejects.toThrow('deadline')
      expect(connection.database.prepare('SELECT COUNT(*) AS n FROM things').get()).toEqual({
        n: 0,
      })
    } finally {
      await close()
    }
  })

  it('keeps other statements out of an open transaction that awaits', async () => {
    const { connection, store, close } = openTemporarySqlite()
    try {
      connection.database.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)')
      const other = claimRequest()
      let release!: () => void
      const gate = new Promise<void>((resolve) => (release = resolve))
      const transaction = connection.transaction(async (tx) => {
        tx.database.prepare('INSERT INTO things (id) VALUES (1)').run()
        await gate
        throw new Error('roll back')
      })
      // This claim is issued while the transaction is open; it must not become part of it.
      const claimed = store.claim(other)
      release()
      await expect(transaction).rejects.toThrow('roll back')
      expect((await claimed).kind).toBe('claimed')
      expect(await store.claim({ ...other, token: randomUUID() })).toEqual({ kind: 'in_progress' })
    } finally {
      await close()
    }
  })
})

const bodyOfReplay = (outcome: Awaited<ReturnType<SqliteStore['claim']>>) =>
  outcome.kind === 'replay' ? Buffer.from(outcome.response.body).toString() : outcome.kind

describe('SQLite store, when its clock steps back', () => {
  it('completes a claim that replaced an expired record, though the clock stepped back before the completion', async () => {
    const clock = createManualClock(Date.UTC(2026, 0, 1))
    const { store, close } = openTemporarySqlite(clock)
    try {
      const first = request({ ttlMs: 60_000, leaseMs: 1_000 })
      await store.claim(first)
      expect(await store.complete(first, response('{"run":1}'))).toBe(true)
      // The record expires, unpurged; the key is claimed anew over it.
      clock.advance(61_000)
      const again = { ...first, token: randomUUID() }
      expect(outcomeOf(await store.claim(again))).toBe('claimed')
      // A time-sync steps the clock back to before the old record's expiry.
      clock.advance(-30_000)
      expect(await store.complete(again, response('{"run":2}'))).toBe(true)
      expect(store.inProgress).toBe(0)
      const replay = await store.claim({ ...first, token: randomUUID() })
      expect(replay.kind === 'replay' && Buffer.from(replay.response.body).toString()).toBe(
        '{"run":2}',
      )
    } finally {
      await close()
    }
  })
})

describe('SQLite store, its replay cache', () => {
  it('caches a record when it is first replayed, not when it is completed', async () => {
    const { store, close } = openTemporarySqlite()
    try {
      const claims = Array.from({ length: 20 }, claimRequest)
      for (const claim of claims) {
        expect((await store.claim(claim)).kind).toBe('claimed')
        expect(await store.complete(claim, stored)).toBe(true)
      }
      // Twenty completions: nothing held in memory for them.
      expect(store.cache().entries).toBe(0)
      const retried = claims[7]
      if (retried === undefined) throw new Error('expected a claim')
      const first = await store.claim({ ...retried, token: randomUUID() })
      expect(bodyOfReplay(first)).toBe('{"id":1}')
      expect(store.cache()).toMatchObject({ entries: 1, hits: 0 })
      // The second replay of the key comes from memory.
      const second = await store.claim({ ...retried, token: randomUUID() })
      expect(bodyOfReplay(second)).toBe('{"id":1}')
      expect(store.cache()).toMatchObject({ entries: 1, hits: 1 })
      // A reused key with another request is still refused, from memory too.
      const other = await store.claim({
        ...retried,
        token: randomUUID(),
        fingerprint: 'e'.repeat(64),
      })
      expect(other.kind).toBe('mismatch')
    } finally {
      await close()
    }
  })
})

describe('SQLite store, its replay cache after a refusal', () => {
  it('caches the record a mismatch read: the key is answered from memory afterwards', async () => {
    const { store, close } = openTemporarySqlite()
    try {
      const claim = claimRequest()
      expect((await store.claim(claim)).kind).toBe('claimed')
      expect(await store.complete(claim, stored)).toBe(true)
      const changedBody = { ...claim, fingerprint: 'e'.repeat(64) }
      expect((await store.claim({ ...changedBody, token: randomUUID() })).kind).toBe('mismatch')
      expect(store.cache()).toMatchObject({ entries: 1, hits: 0 })
      // Both the refusal and the replay come from memory now, each with its own answer.
      expect((await store.claim({ ...changedBody, token: randomUUID() })).kind).toBe('mismatch')
      const replay = await store.claim({ ...claim, token: randomUUID() })
      expect(bodyOfReplay(replay)).toBe('{"id":1}')
      expect(store.cache()).toMatchObject({ entries: 1, hits: 2 })
    } finally {
      await close()
    }
  })
})

describe('SQLite store, its filter of keys', () => {
  /** Resolves once the store has read in every record of its file. */
  async function untilReady(store: SqliteStore): Promise<void> {
    for (let tries = 0; !store.keyFilter().ready; tries++) {
      if (tries > 500) throw new Error('the key filter never became ready')
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }

  it('skips the look-up of keys the file cannot hold, and never misses one it holds', async () => {
    const { dir, filename } = temporaryFile()
    try {
      const written = Array.from({ length: 4_500 }, claimRequest)
      {
        const connection = openSqliteConnection(filename)
        const store = createSqliteStore({ connection })
        await Promise.all(
          written.map(async (claim) => {
            await store.claim(claim)
            await store.complete(claim, stored)
          }),
        )
        store.close()
        connection.close()
      }
      // Reopened: the records are read in (in chunks), none of them cached.
      const connection = openSqliteConnection(filename)
      const store = createSqliteStore({ connection })
      try {
        await untilReady(store)
        expect(store.keyFilter()).toMatchObject({ ready: true, keys: 4_500, skipped: 0 })
        for (const claim of written) {
          expect(bodyOfReplay(await store.claim({ ...claim, token: randomUUID() }))).toBe(
            '{"id":1}',
          )
        }
        const fresh = Array.from({ length: 1_000 }, claimRequest)
        for (const claim of fresh) expect((await store.claim(claim)).kind).toBe('claimed')
        // Every new key, but for the filter's rare false positives.
        expect(store.keyFilter().skipped).toBeGreaterThanOrEqual(980)
        // A key written after the read-in is known at once.
        const [next] = fresh
        if (next === undefined) throw new Error('expected a claim')
        await store.complete(next, stored)
        expect(bodyOfReplay(await store.claim({ ...next, token: randomUUID() }))).toBe('{"id":1}')
      } finally {
        store.close()
        connection.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('grows past its size with a second filter, without reading the file again', async () => {
    const { store, close } = openTemporarySqlite()
    try {
      await untilReady(store)
      // The smallest filter takes 100,000 keys: write more than that.
      const written: ReturnType<typeof claimRequest>[] = []
      for (let batch = 0; batch < 105; batch++) {
        const claims = Array.from({ length: 1_000 }, claimRequest)
        await Promise.all(
          claims.map(async (claim) => {
            await store.claim(claim)
            await store.complete(claim, stored)
          }),
        )
        written.push(...claims)
      }
      expect(store.keyFilter()).toMatchObject({ ready: true, keys: 105_000, filters: 2 })
      const skippedBefore = store.keyFilter().skipped
      const fresh = Array.from({ length: 1_000 }, claimRequest)
      for (const claim of fresh) expect((await store.claim(claim)).kind).toBe('claimed')
      // New keys still skip their look-up (but for two filters' false positives).
      expect(store.keyFilter().skipped - skippedBefore).toBeGreaterThanOrEqual(960)
      // Keys of both filters are never missed: the first written, the last, and a sample.
      for (const claim of [...written.slice(0, 200), ...written.slice(-200)]) {
        expect(bodyOfReplay(await store.claim({ ...claim, token: randomUUID() }))).toBe('{"id":1}')
      }
    } finally {
      await close()
    }
  }, 60_000)

  it('never misses a record written while the file is still being read in', async () => {
    const { store, close } = openTemporarySqlite()
    try {
      expect(store.keyFilter().ready).toBe(false)
      const early = claimRequest()
      await store.claim(early)
      await store.complete(early, stored)
      await untilReady(store)
      expect(bodyOfReplay(await store.claim({ ...early, token: randomUUID() }))).toBe('{"id":1}')
    } finally {
      await close()
    }
  })

  it('fails a claim whose look-up it would skip once the records table is gone', async () => {
    const { connection, store, close } = openTemporarySqlite()
    try {
      await untilReady(store)
      expect((await store.claim(claimRequest())).kind).toBe('claimed')
      expect(store.keyFilter().skipped).toBe(1)
      connection.database.exec('DROP TABLE idempotency_records')
      // The operation must not run: the claim fails, as the look-up would have.
      await expect(store.claim(claimRequest())).rejects.toThrow(/no such table/)
    } finally {
      await close()
    }
  })
})

describe('SQLite store, one owner per file', () => {
  function spawnHolder(filename: string, scope: string, key: string) {
    const child = spawn(process.execPath, [HOLD_CLAIM, filename, scope, key], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const claimed = new Promise<string>((resolve) => {
      child.stdout.once('data', (chunk: Buffer) => {
        resolve(chunk.toString().trim())
      })
    })
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        resolve()
      })
    })
    return { child, claimed, exited }
  }

  /** A process that claims `key` and is killed with its claim held (SIGKILL), and reaped. */
  async function holdAndKill(filename: string, key: string): Promise<void> {
    const holder = spawnHolder(filename, 'acct', key)
    expect(await holder.claimed).toBe('claimed')
    holder.child.kill('SIGKILL')
    await holder.exited
  }

  it('refuses a second store on the file in the same process', async () => {
    const first = openTemporarySqlite()
    const secondConnection = openSqliteConnection(first.filename)
    try {
      expect(() => createSqliteStore({ connection: secondConnection })).toThrow(
        SqliteStoreOwnedError,
      )
    } finally {
      secondConnection.close()
      await first.close()
    }
  })

  it('refuses a database file with a second name (a hard link), by either name, alive owner or not', async () => {
    const { dir, filename } = temporaryFile()
    const holder = spawnHolder(filename, 'acct', randomUUID())
    const linked = join(dir, 'linked.db')
    try {
      expect(await holder.claimed).toBe('claimed')
      linkSync(filename, linked)
      for (const name of [linked, filename]) {
        const connection = openSqliteConnection(name)
        try {
          expect(() => createSqliteStore({ connection })).toThrow(/hard links/)
        } finally {
          connection.close()
        }
      }
      expect(ownFromAnotherProcess(linked)).toBe('refused SqliteStoreOwnedError')
    } finally {
      holder.child.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a store while another live process owns the file', async () => {
    const { dir, filename } = temporaryFile()
    const holder = spawnHolder(filename, 'acct', randomUUID())
    try {
      expect(await holder.claimed).toBe('claimed')
      const connection = openSqliteConnection(filename)
      try {
        expect(() => createSqliteStore({ connection })).toThrow(/owns the idempotency records/)
      } finally {
        connection.close()
      }
    } finally {
      holder.child.kill('SIGKILL')
      await holder.exited
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('owns the file at once after its owner was killed, with nothing left in progress', async () => {
    const { dir, filename } = temporaryFile()
    const key = randomUUID()
    try {
      await holdAndKill(filename, key)
      // The killed holder's claim died with it: the retry claims at once, no lease to wait.
      expect(await claimOnReopen(filename, key)).toBe('claimed')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('owns the file at once after its owner was killed and is a zombie its parent never reaped', async () => {
    const { dir, filename } = temporaryFile()
    const key = randomUUID()
    // The holder's parent is `sleep`, which never reaps a child: killed, the holder stays a
    // zombie (state Z) until the sleep ends, as under a supervisor that restarts at once.
    const parent = spawn(
      '/bin/sh',
      [
        '-c',
        'node "$0" "$1" "$2" "$3" & echo "pid $!"; exec sleep 30',
        HOLD_CLAIM,
        filename,
        'acct',
        key,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    try {
      let output = ''
      await new Promise<void>((resolve, reject) => {
        parent.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString()
          if (/pid \d+/.test(output) && output.includes('claimed')) resolve()
        })
        parent.once('exit', () => {
          reject(new Error(`the holder's parent exited early: ${output}`))
        })
      })
      const pid = Number(/pid (\d+)/.exec(output)?.[1])
      process.kill(pid, 'SIGKILL')
      const state = () => {
        const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
        return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]
      }
      for (let tries = 0; state() !== 'Z'; tries++) {
        if (tries > 200) throw new Error('the killed holder never became a zombie')
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      expect(await claimOnReopen(filename, key)).toBe('claimed')
    } finally {
      parent.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('owns the file at once after a killed owner of another host name on this kernel (a recreated container)', async () => {
    const { dir, filename } = temporaryFile()
    const key = randomUUID()
    try {
      await holdAndKill(filename, key)
      // As the owner row reads when the owner ran in a container that is gone: another host
      // name, a pid of its own namespace (this one's is alive), a heartbeat just now.
      const raw = new Database(filename)
      raw
        .prepare('UPDATE idempotency_records_owner SET host = ?, pid = ?, heartbeat_at = ?')
        .run('container-7f3a', process.pid, Date.now())
      raw.close()
      expect(await claimOnReopen(filename, key)).toBe('claimed')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a store while the owner lives, whatever its row says of its host and heartbeat', async () => {
    const { dir, filename } = temporaryFile()
    const holder = spawnHolder(filename, 'acct', randomUUID())
    try {
      expect(await holder.claimed).toBe('claimed')
      // A row that alone would read as a dead owner on another machine: its heartbeat an hour old.
      const raw = new Database(filename)
      raw
        .prepare('UPDATE idempotency_records_owner SET host = ?, heartbeat_at = ?')
        .run('container-7f3a', Date.now() - 3_600_000)
      raw.close()
      const connection = openSqliteConnection(filename)
      try {
        expect(() => createSqliteStore({ connection })).toThrow(SqliteStoreOwnedError)
      } finally {
        connection.close()
      }
    } finally {
      holder.child.kill('SIGKILL')
      await holder.exited
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a store while the owner lives, even when its lock file was deleted and made again', async () => {
    const { dir, filename } = temporaryFile()
    const holder = spawnHolder(filename, 'acct', randomUUID())
    try {
      expect(await holder.claimed).toBe('claimed')
      unlinkSync(`${filename}-owner`)
      expect(ownFromAnotherProcess(filename)).toBe('refused SqliteStoreOwnedError')
    } finally {
      holder.child.kill('SIGKILL')
      await holder.exited
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('owns several tables of one file in one process, and holds the file while any is open', () => {
    const { dir, filename } = temporaryFile()
    const first = openSqliteConnection(filename)
    const second = openSqliteConnection(filename)
    try {
      const records = createSqliteStore({ connection: first })
      const others = createSqliteStore({ connection: second, tableName: 'other_records' })
      others.close()
      // The other table's store let go; this one still holds the file, for every table of it:
      // one process per file.
      expect(ownFromAnotherProcess(filename)).toBe('refused SqliteStoreOwnedError')
      expect(ownFromAnotherProcess(filename, 'other_records')).toBe('refused SqliteStoreOwnedError')
      records.close()
      expect(ownFromAnotherProcess(filename)).toBe('owned')
      expect(ownFromAnotherProcess(filename, 'other_records')).toBe('owned')
    } finally {
      first.close()
      second.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a file an earlier version owns without touching its table', async () => {
    const { dir, filename } = temporaryFile()
    // A live process standing for an owner of the second version: a row without a lock file.
    const owner = spawn('sleep', ['30'])
    try {
      await new Promise((resolve) => owner.once('spawn', resolve))
      const pid = owner.pid ?? 0
      const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
      const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
      const raw = new Database(filename)
      raw.exec(`
        CREATE TABLE idempotency_records (
          id INTEGER PRIMARY KEY, scope TEXT NOT NULL, key TEXT NOT NULL,
          fingerprint BLOB NOT NULL, expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL,
          status INTEGER NOT NULL, headers TEXT NOT NULL, body BLOB NOT NULL,
          request_id TEXT NOT NULL
        );
        CREATE UNIQUE INDEX idempotency_records_key ON idempotency_records (scope, key);
        CREATE TABLE idempotency_records_owner (
          id INTEGER PRIMARY KEY CHECK (id = 1), instance TEXT NOT NULL, pid INTEGER NOT NULL,
          host TEXT NOT NULL, boot_id TEXT, process_start TEXT, heartbeat_at INTEGER NOT NULL
        );`)
      raw
        .prepare('INSERT INTO idempotency_records_owner VALUES (1, ?, ?, ?, ?, ?, ?)')
        .run(
          'v2',
          pid,
          hostname(),
          readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
          start,
          Date.now(),
        )
      raw.close()
      expect(ownFromAnotherProcess(filename)).toBe('refused SqliteStoreOwnedError')
      const after = new Database(filename, { readonly: true })
      try {
        const columns = after
          .prepare<[], { name: string }>(
            `SELECT name FROM pragma_table_info('idempotency_records')`,
          )
          .all()
        expect(columns.map((column) => column.name)).not.toContain('key_hash')
        expect(
          after
            .prepare<[], { name: string }>(
              `SELECT name FROM pragma_index_list('idempotency_records')`,
            )
            .all(),
        ).toEqual([{ name: 'idempotency_records_key' }])
      } finally {
        after.close()
      }
    } finally {
      owner.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a table that is not of idempotency records, leaves it as it is, and gives the file back', () => {
    const { dir, filename } = temporaryFile()
    const connection = openSqliteConnection(filename)
    try {
      connection.database.exec(`
        CREATE TABLE api_keys (id INTEGER PRIMARY KEY, scope TEXT, key TEXT, secret TEXT);
        CREATE UNIQUE INDEX api_keys_key ON api_keys (scope, key);`)
      expect(() => createSqliteStore({ connection, tableName: 'api_keys' })).toThrow(
        /api_keys is not an idempotency records table/,
      )
      const columns = connection.database
        .prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('api_keys')`)
        .all()
      expect(columns.map((column) => column.name)).toEqual(['id', 'scope', 'key', 'secret'])
      expect(
        connection.database
          .prepare<[], { name: string }>(`SELECT name FROM pragma_index_list('api_keys')`)
          .all(),
      ).toEqual([{ name: 'api_keys_key' }])
      // The refused store holds nothing: another process may own the file.
      expect(ownFromAnotherProcess(filename)).toBe('owned')
    } finally {
      connection.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses to own a file whose lock file cannot be taken, and holds nothing of it', () => {
    const { dir, filename } = temporaryFile()
    mkdirSync(`${filename}-owner`)
    const connection = openSqliteConnection(filename)
    try {
      expect(() => createSqliteStore({ connection })).toThrow(/Cannot take the owner's lock/)
      expect(() => createSqliteStore({ connection, tableName: 'other_records' })).toThrow(
        SqliteStoreOwnedError,
      )
    } finally {
      connection.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('owns a file again whose owner row a closed store of this process could not delete', async () => {
    const { dir, filename } = temporaryFile()
    const first = openSqliteConnection(filename)
    try {
      const store = createSqliteStore({ connection: first })
      // Closed while a transaction holds the connection (its owner row's delete must wait),
      // and the connection closed before the delete could run: the row names this process.
      await expect(
        first.transaction(async () => {
          store.close()
          first.close()
          return Promise.resolve()
        }),
      ).rejects.toThrow()
      expect(await claimOnReopen(filename, randomUUID())).toBe('claimed')
      expect(ownFromAnotherProcess(filename)).toBe('owned')
    } finally {
      if (first.database.open) first.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a view under the records table name, and holds nothing of the file', () => {
    const { dir, filename } = temporaryFile()
    const connection = openSqliteConnection(filename)
    try {
      connection.database.exec(`
        CREATE TABLE base (id INTEGER PRIMARY KEY, scope TEXT, key TEXT, fingerprint BLOB,
          expires_at INTEGER, created_at INTEGER, status INTEGER, headers TEXT, body BLOB,
          request_id TEXT, key_hash INTEGER);
        CREATE VIEW idempotency_records AS SELECT * FROM base;`)
      expect(() => createSqliteStore({ connection })).toThrow(/view idempotency_records is not/)
      expect(ownFromAnotherProcess(filename, 'other_records')).toBe('owned')
      connection.database.exec('DROP VIEW idempotency_records')
      const store = createSqliteStore({ connection })
      store.close()
    } finally {
      connection.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('gives the file back on close, so that the next owner needs no liveness check', async () => {
    const first = openTemporarySqlite()
    first.store.close()
    const connection = openSqliteConnection(first.filename)
    try {
      const next = createSqliteStore({ connection })
      expect(outcomeOf(await next.claim(claimRequest()))).toBe('claimed')
      next.close()
    } finally {
      connection.close()
      await first.close()
    }
  })
})

describe('SQLite records written by the first version', () => {
  it('keeps their completed records for replay and drops their claims, which belonged to a dead process', async () => {
    const { dir, filename } = temporaryFile()
    try {
      const legacy = new Database(filename)
      legacy.exec(`
        CREATE TABLE idempotency_records (
          scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
          state TEXT NOT NULL CHECK (state IN ('in_progress', 'completed')),
          token TEXT, lease_expires_at INTEGER, expires_at INTEGER NOT NULL,
          created_at INTEGER NOT NULL, response_status INTEGER, response_headers TEXT,
          response_body BLOB, original_request_id TEXT, PRIMARY KEY (scope, key)
        ) WITHOUT ROWID;
        CREATE INDEX idempotency_records_expires_at ON idempotency_records (expires_at);`)
      const far = Date.now() + 3_600_000
      const insert = legacy.prepare(
        `INSERT INTO idempotency_records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      insert.run(
        'acct',
        'done',
        'f'.repeat(64),
        'completed',
        null,
        null,
        far,
        1,
        201,
        '{"content-type":"application/json"}',
        Buffer.from('{"id":1}'),
        'req_0000000000000001',
      )
      insert.run(
        'acct',
        'running',
        'f'.repeat(64),
        'in_progress',
        'tok',
        far,
        far,
        1,
        null,
        null,
        null,
        null,
      )
      legacy.close()

      const connection = openSqliteConnection(filename)
      const store = createSqliteStore({ connection })
      try {
        const done = await store.claim(request({ scope: 'acct', key: 'done' }))
        const running = await store.claim(request({ scope: 'acct', key: 'running' }))
        expect(done.kind).toBe('replay')
        if (done.kind === 'replay') {
          expect(Buffer.from(done.response.body).toString()).toBe('{"id":1}')
          expect(done.response.requestId).toBe('req_0000000000000001')
          expect(done.response.headers).toEqual({ 'content-type': 'application/json' })
        }
        expect(outcomeOf(running)).toBe('claimed')
      } finally {
        store.close()
        connection.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('SQLite records written by the second version', () => {
  it('keeps their records for replay and indexes them by the hash of (scope, key)', async () => {
    const { dir, filename } = temporaryFile()
    try {
      const legacy = new Database(filename)
      legacy.exec(`
        CREATE TABLE idempotency_records (
          id INTEGER PRIMARY KEY, scope TEXT NOT NULL, key TEXT NOT NULL,
          fingerprint BLOB NOT NULL, expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL,
          status INTEGER NOT NULL, headers TEXT NOT NULL, body BLOB NOT NULL,
          request_id TEXT NOT NULL
        );
        CREATE UNIQUE INDEX idempotency_records_key ON idempotency_records (scope, key);`)
      const insert = legacy.prepare(
        `INSERT INTO idempotency_records (scope, key, fingerprint, expires_at, created_at, status,
                                          headers, body, request_id)
         VALUES (?, ?, ?, ?, 1, 201, '{"content-type":"application/json"}', ?, 'req_1')`,
      )
      const far = Date.now() + 3_600_000
      const keys = Array.from({ length: 50 }, () => randomUUID())
      for (const [i, key] of keys.entries()) {
        insert.run('acct', key, Buffer.alloc(32, 0xff), far, Buffer.from(`{"id":${String(i)}}`))
      }
      legacy.close()

      const connection = openSqliteConnection(filename)
      const store = createSqliteStore({ connection })
      try {
        const indexes = connection.database
          .prepare<[], { name: string; unique: number }>(
            `SELECT name, "unique" FROM pragma_index_list('idempotency_records')`,
          )
          .all()
        expect(indexes).toEqual([{ name: 'idempotency_records_key_hash', unique: 0 }])
        for (const [i, key] of keys.entries()) {
          const outcome = await store.claim(request({ scope: 'acct', key }))
          expect(bodyOfReplay(outcome)).toBe(`{"id":${String(i)}}`)
        }
        // A key of the old records under another scope is another key.
        const [first = ''] = keys
        expect(outcomeOf(await store.claim(request({ scope: 'other', key: first })))).toBe(
          'claimed',
        )
      } finally {
        store.close()
        connection.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('SQLite records that share a hash', () => {
  it('never answers one key with the record of another key of the same hash', async () => {
    const { connection, store, close } = openTemporarySqlite()
    try {
      // A record of another key under the hash of `mine`, as a collision would leave it.
      const mine = request({ scope: 'acct' })
      connection.database
        .prepare(
          `INSERT INTO idempotency_records (scope, key, fingerprint, expires_at, created_at, status,
                                            headers, body, request_id, key_hash)
           VALUES ('acct', 'theirs', ?, ?, 1, 201, '{}', ?, 'req_1', ?)`,
        )
        .run(
          Buffer.from(mine.fingerprint, 'hex'),
          Date.now() + 3_600_000,
          Buffer.from('{"id":"theirs"}'),
          sqliteKeyHash('acct', mine.key),
        )
      // While the filter is still reading the file in, every claim looks the key up.
      expect(store.keyFilter().ready).toBe(false)
      expect(outcomeOf(await store.claim(mine))).toBe('claimed')
      expect(await store.complete(mine, response('{"id":"mine"}'))).toBe(true)
      expect(bodyOfReplay(await store.claim({ ...mine, token: randomUUID() }))).toBe(
        '{"id":"mine"}',
      )
      const rows = connection.database
        .prepare<[number], { key: string }>(
          'SELECT key FROM idempotency_records WHERE key_hash = ? ORDER BY key',
        )
        .all(sqliteKeyHash('acct', mine.key))
      expect(rows.map((row) => row.key)).toEqual([mine.key, 'theirs'].sort())
    } finally {
      await close()
    }
  })

  it('refuses a completion when a record under the same key is already there', async () => {
    const { connection, store, close } = openTemporarySqlite()
    try {
      const claim = request({ scope: 'acct' })
      expect(outcomeOf(await store.claim(claim))).toBe('claimed')
      // Written behind the claim's back (another writer of the file).
      connection.database
        .prepare(
          `INSERT INTO idempotency_records (scope, key, fingerprint, expires_at, created_at, status,
                                            headers, body, request_id, key_hash)
           VALUES ('acct', ?, x'00', ?, 1, 201, '{}', x'', 'req_1', ?)`,
        )
        .run(claim.key, Date.now() + 3_600_000, sqliteKeyHash('acct', claim.key))
      expect(await store.complete(claim, stored)).toBe(false)
      expect(
        connection.database
          .prepare('SELECT count(*) AS n FROM idempotency_records WHERE key = ?')
          .get(claim.key),
      ).toEqual({ n: 1 })
    } finally {
      await close()
    }
  })
})

describe('SQLite checkpoints', () => {
  it('checkpoints the WAL from a worker thread, so that no commit on the event loop does', async () => {
    const { dir, filename } = temporaryFile()
    const background = openSqliteConnection(filename)
    try {
      // The writer's own checkpoint is only a backstop now.
      expect(background.database.pragma('wal_autocheckpoint', { simple: true })).toBe(10_000)
      background.database.exec('CREATE TABLE things (id INTEGER PRIMARY KEY, data BLOB)')
      const before = statSync(filename).size
      // About 600 pages: below SQLite's own threshold of 1,000, which would never checkpoint them.
      await background.write((db) => {
        const insert = db.prepare('INSERT INTO things (data) VALUES (?)')
        for (let i = 0; i < 600; i++) insert.run(Buffer.alloc(3_000, i % 256))
      })
      // Committed into the WAL only: the database file has not grown.
      expect(statSync(filename).size).toBe(before)
      const grown = await eventually(() => statSync(filename).size > before + 1_500_000)
      expect(grown).toBe(true)
      expect(background.database.prepare('SELECT COUNT(*) AS n FROM things').get()).toEqual({
        n: 600,
      })
    } finally {
      background.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("gives the writer SQLite's own checkpoint back when the worker fails", async () => {
    const { dir, filename } = temporaryFile()
    const connection = openSqliteConnection(filename)
    try {
      expect(connection.database.pragma('wal_autocheckpoint', { simple: true })).toBe(10_000)
      // Gone before the worker (tens of milliseconds to start) opens it: the worker fails.
      unlinkSync(filename)
      const restored = await eventually(
        () => connection.database.pragma('wal_autocheckpoint', { simple: true }) === 1_000,
      )
      expect(restored).toBe(true)
    } finally {
      connection.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("leaves the checkpoint to SQLite's commits when asked to", () => {
    const { dir, filename } = temporaryFile()
    const inline = openSqliteConnection(filename, { checkpoint: 'commit' })
    try {
      expect(inline.database.pragma('wal_autocheckpoint', { simple: true })).toBe(1_000)
    } finally {
      inline.close()
      rmSync(dir, { recursive: true, force: true })
    }
    expect(() => openSqliteConnection(filename, { checkpoint: 'never' as 'commit' })).toThrow(
      /checkpoint/,
    )
  })
})

/** Polls `condition` every 20 ms for up to 10 s. */
async function eventually(condition: () => boolean): Promise<boolean> {
  for (const giveUpAt = Date.now() + 10_000; Date.now() < giveUpAt;) {
    if (condition()) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return condition()
}

describe('SQLite group commit', () => {
  it('commits the writes of one turn together; one that throws fails alone', async () => {
    const { connection, close } = openTemporarySqlite()
    try {
      connection.database.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)')
      const insert = (id: number) =>
        connection.write((db) => db.prepare('INSERT INTO things (id) VALUES (?)').run(id).changes)
      const outcomes = await Promise.allSettled([
        insert(1),
        insert(2),
        // The primary key refuses this one; the statement fails, the transaction goes on.
        insert(1),
        connection.write(() => {
          throw new Error('this write fails in JavaScript')
        }),
        insert(3),
      ])
      expect(outcomes.map((outcome) => outcome.status)).toEqual([
        'fulfilled',
        'fulfilled',
        'rejected',
        'rejected',
        'fulfilled',
      ])
      expect(connection.database.prepare('SELECT id FROM things ORDER BY id').all()).toEqual([
        { id: 1 },
        { id: 2 },
        { id: 3 },
      ])
    } finally {
      await close()
    }
  })

  it('waits for an open transaction, and never writes into it', async () => {
    const { connection, close } = openTemporarySqlite()
    try {
      connection.database.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)')
      let release!: () => void
      const gate = new Promise<void>((resolve) => (release = resolve))
      const transaction = connection.transaction(async () => {
        await gate
        throw new Error('roll back')
      })
      const written = connection.write((db) =>
        db.prepare('INSERT INTO things (id) VALUES (7)').run(),
      )
      await new Promise((resolve) => setImmediate(resolve))
      release()
      await expect(transaction).rejects.toThrow('roll back')
      await written
      expect(connection.database.prepare('SELECT id FROM things').all()).toEqual([{ id: 7 }])
    } finally {
      await close()
    }
  })
})
