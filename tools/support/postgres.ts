import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTestDatabase } from '../../test-support/postgres-database.js'
import { startPostgres } from '../../test-support/service-processes.js'

export interface TemporaryPostgres {
  /** The server's URL (database `postgres`). */
  readonly url: string
  /** A fresh, empty database on it. */
  createDatabase(): Promise<string>
  stop(): void
}

/**
 * A throwaway PostgreSQL server on 127.0.0.1 and a free port, from the machine's server binaries
 * (initdb, pg_ctl), as the test run's global setup starts one. For the tools that need one of
 * their own (`npm run soak`, `npm run fuzz -- --postgres`).
 */
export async function startTemporaryPostgres(): Promise<TemporaryPostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'ticksupply-tool-pg-'))
  // A throwaway server: what it writes need not survive a crash of the machine.
  const server = await startPostgres(dir, { durable: false, maxConnections: 200 })
  const url = server.url
  return {
    url,
    createDatabase: () => createTestDatabase(url, 'tool'),
    stop() {
      try {
        server.stop()
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  }
}
