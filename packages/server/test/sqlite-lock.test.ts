/**
 * Audit 11 (issue 8): another process holding SQLite's write lock (the keys CLI, a backup, a
 * second tool) must not freeze the server. Requests that need no write lock keep being
 * answered; a keyed write waits for the lock without blocking anything and fails closed with
 * 503 when the wait runs out, leaving its key unused.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import type { Answer, SpawnedServer } from './support/server.js'
import { errorOf, newKey, send, spawnServer, tempDatabase } from './support/server.js'

const running: SpawnedServer[] = []
const cleanups: (() => void)[] = []
afterEach(async () => {
  for (const server of running.splice(0)) {
    server.kill('SIGKILL')
    await server.exited
  }
  for (const cleanup of cleanups.splice(0)) cleanup()
})

describe('a SQLite write lock held by another process', () => {
  it('keeps reads and unauthenticated routes answered, and fails the keyed write closed with 503', async () => {
    const database = tempDatabase()
    cleanups.push(database.cleanup)
    const server = await spawnServer({ DATABASE_URL: database.url })
    running.push(server)
    const key = newKey()
    const body = { datastream_id: 3 }

    const locker = new Database(database.filename)
    cleanups.push(() => {
      if (locker.inTransaction) locker.exec('ROLLBACK')
      locker.close()
    })
    locker.exec('BEGIN IMMEDIATE')

    const order: string[] = []
    const noted = (name: string) => (answer: Answer) => {
      order.push(name)
      return answer
    }
    const write = send(`${server.url}/v1/subscriptions`, { key, body }).then(noted('write'))
    // The write is now waiting for the lock.
    await sleep(200)
    const reads = await Promise.all([
      ...Array.from({ length: 10 }, () =>
        send(`${server.url}/openapi.json`, { apiKey: null }).then(noted('read')),
      ),
      ...Array.from({ length: 5 }, () => send(`${server.url}/v1/exchanges`).then(noted('read'))),
    ])
    expect(reads.map((answer) => answer.status)).toEqual(Array.from({ length: 15 }, () => 200))
    const refused = await write
    // Every read was answered while the write still waited for the lock.
    expect(order.indexOf('write')).toBe(15)
    expect(refused.status).toBe(503)
    expect(errorOf(refused).code).toBe('unavailable')

    // The 503 used nothing up: once the lock is gone, the same key runs the operation.
    locker.exec('ROLLBACK')
    const retry = await send(`${server.url}/v1/subscriptions`, { key, body })
    expect(retry.status).toBe(201)
    expect(retry.headers.get('idempotent-replayed')).toBeNull()
  })
})
