/**
 * `/healthz` and `/readyz`: public, and honest. Readiness fails while the database or the
 * idempotency store cannot take work, while a migration is missing, and when the SQLite file
 * is deleted or replaced under a running server process; writes then answer 503 instead of
 * being acknowledged into a file that is gone.
 */
import { copyFileSync, renameSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Answer, SpawnedServer, TestServer } from './support/server.js'
import {
  errorOf,
  newKey,
  send,
  spawnServer,
  startServer,
  subscriptionsTo,
  tempDatabase,
  executeSql,
} from './support/server.js'

function create(url: string, key: string | undefined, datastreamId: number): Promise<Answer> {
  return send(`${url}/v1/subscriptions`, {
    ...(key === undefined ? {} : { key }),
    body: { datastream_id: datastreamId },
  })
}

const ready = (url: string) => send(`${url}/readyz`, { apiKey: null })

describe('/healthz and /readyz', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startServer()
  })
  afterAll(async () => {
    await server.close()
  })

  it('answers /healthz without an API key, uncached', async () => {
    const answer = await send(`${server.url}/healthz`, { apiKey: null })
    expect(answer.status).toBe(200)
    expect(answer.json()).toEqual({ status: 'ok' })
    expect(answer.headers.get('cache-control')).toBe('no-store')
  })

  it('answers /readyz with every check ok while the database and the store work', async () => {
    const answer = await ready(server.url)
    expect(answer.status).toBe(200)
    expect(answer.json()).toEqual({
      status: 'ready',
      checks: { database: 'ok', idempotency_store: 'ok' },
    })
    expect(answer.headers.get('cache-control')).toBe('no-store')
  })

  it('leaves no record behind and counts no claim for its probe', async () => {
    for (let probe = 0; probe < 5; probe++) expect((await ready(server.url)).status).toBe(200)
    expect(server.claims()).toBe(0)
    const rows = await server.query<{ n: number | string }>(
      'SELECT COUNT(*) AS n FROM idempotency_records',
    )
    expect(Number(rows[0]?.n)).toBe(0)
  })

  it('answers 503 in the envelope, naming the store, while the idempotency records are gone', async () => {
    await executeSql(server, 'ALTER TABLE idempotency_records RENAME TO idempotency_records_away')
    let answer: Answer
    try {
      answer = await ready(server.url)
    } finally {
      await executeSql(server, 'ALTER TABLE idempotency_records_away RENAME TO idempotency_records')
    }
    expect(answer.status).toBe(503)
    expect(errorOf(answer)).toMatchObject({
      code: 'unavailable',
      message: 'Not ready: the idempotency store is unavailable',
      details: { database: 'ok' },
    })
    expect(answer.headers.get('retry-after')).toBe('1')
    expect((await ready(server.url)).status).toBe(200)
  })

  it('answers 503 naming the database while a migration of this version is missing', async () => {
    const [latest] = await server.query<{ id: number }>(
      'SELECT id, name, applied_at FROM schema_migrations ORDER BY id DESC LIMIT 1',
    )
    const row = await server.query<{ id: number; name: string; applied_at: number | string }>(
      'SELECT id, name, applied_at FROM schema_migrations WHERE id = ?',
      [latest?.id],
    )
    await executeSql(server, `DELETE FROM schema_migrations WHERE id = ${String(latest?.id)}`)
    let answer: Answer
    try {
      answer = await ready(server.url)
    } finally {
      const { id, name, applied_at } = row[0] ?? { id: 0, name: '', applied_at: 0 }
      await executeSql(
        server,
        `INSERT INTO schema_migrations (id, name, applied_at) VALUES (${String(id)}, '${name}', ${String(applied_at)})`,
      )
    }
    expect(answer.status).toBe(503)
    expect(errorOf(answer)).toMatchObject({
      code: 'unavailable',
      message: 'Not ready: the database is unavailable',
      details: {
        database: `migrations not applied: ${String(latest?.id)}`,
        idempotency_store: 'ok',
      },
    })
    expect((await ready(server.url)).status).toBe(200)
  })
})

describe('a SQLite file deleted or replaced under the running server', () => {
  const running: SpawnedServer[] = []
  const databases: ReturnType<typeof tempDatabase>[] = []

  afterEach(async () => {
    for (const server of running.splice(0)) {
      server.kill('SIGKILL')
      await server.exited
    }
    for (const database of databases.splice(0)) database.cleanup()
  })

  async function start(url: string): Promise<SpawnedServer> {
    const server = await spawnServer({ DATABASE_URL: url })
    running.push(server)
    return server
  }

  async function stop(server: SpawnedServer): Promise<void> {
    server.kill('SIGKILL')
    await server.exited
  }

  /** Every way to write after the file moved: each must be refused, none acknowledged. */
  async function writesAfterTheMove(url: string, keys: readonly string[]): Promise<Answer[]> {
    return [
      await create(url, keys[0], 20),
      await create(url, keys[1], 21),
      await create(url, undefined, 22),
      await create(url, keys[0], 20),
    ]
  }

  function expectRefused(answers: readonly Answer[]): void {
    for (const answer of answers) {
      expect(answer.status, answer.text).toBe(503)
      expect(errorOf(answer).code).toBe('unavailable')
    }
  }

  it('turns not ready and refuses writes once the file is deleted; a restart finds none of them', async () => {
    const database = tempDatabase()
    databases.push(database)
    const server = await start(database.url)
    const before = newKey()
    expect((await create(server.url, before, 10)).status).toBe(201)
    expect((await ready(server.url)).status).toBe(200)

    for (const suffix of ['', '-wal', '-shm']) unlinkSync(`${database.filename}${suffix}`)

    const readiness = await ready(server.url)
    expect(readiness.status).toBe(503)
    expect(errorOf(readiness).details).toMatchObject({
      database: 'failed (SQLITE_READONLY_DBMOVED)',
    })
    const keys = [newKey(), newKey()]
    expectRefused(await writesAfterTheMove(server.url, keys))
    expect((await send(`${server.url}/healthz`, { apiKey: null })).status).toBe(200)
    await stop(server)

    // A new, empty file at the path: nothing that was answered 503 is in it, and the keys are
    // free, so their retries run once.
    const restarted = await start(database.url)
    expect((await ready(restarted.url)).status).toBe(200)
    for (const [index, key] of keys.entries()) {
      const retry = await create(restarted.url, key, 20 + index)
      expect(retry.status).toBe(201)
      expect(retry.headers.get('idempotent-replayed')).toBeNull()
    }
    expect(await subscriptionsTo(restarted.url, 22)).toHaveLength(0)
  })

  it('turns not ready and refuses writes once another file is moved over it (a restore)', async () => {
    const database = tempDatabase()
    databases.push(database)
    const server = await start(database.url)
    const before = newKey()
    const original = await create(server.url, before, 10)
    expect(original.status).toBe(201)

    // A backup taken now, then restored over the live file.
    const backup = join(database.dir, 'backup.db')
    const source = new Database(database.filename, { readonly: true })
    try {
      await source.backup(backup)
    } finally {
      source.close()
    }
    const restoring = `${backup}.restore`
    copyFileSync(backup, restoring)
    renameSync(restoring, database.filename)

    expect((await ready(server.url)).status).toBe(503)
    const keys = [newKey(), newKey()]
    expectRefused(await writesAfterTheMove(server.url, keys))
    await stop(server)

    const restarted = await start(database.url)
    const replay = await create(restarted.url, before, 10)
    expect(replay.status).toBe(201)
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    expect(replay.body.equals(original.body)).toBe(true)
    for (const [index, key] of keys.entries()) {
      const retry = await create(restarted.url, key, 20 + index)
      expect(retry.status).toBe(201)
      expect(retry.headers.get('idempotent-replayed')).toBeNull()
    }
    expect(await subscriptionsTo(restarted.url, 22)).toHaveLength(0)
  })
})
