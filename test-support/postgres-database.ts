import { randomBytes } from 'node:crypto'
import pg from 'pg'

/**
 * A fresh, empty database on the test run's PostgreSQL server, so that each test file (or each
 * server under test) starts from nothing; the benchmarks and tools use it too, with their own
 * name prefix. Resolves its URL.
 */
export async function createTestDatabase(serverUrl: string, prefix = 'test'): Promise<string> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}
