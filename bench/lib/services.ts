/**
 * The benchmark's own PostgreSQL (durable commits: fsync and synchronous_commit on, unlike the
 * test setup) and Redis, on 127.0.0.1 and free ports, in the run's temporary directory; started
 * when a group first needs them, stopped when the benchmark ends.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ServiceProcess } from '../../test-support/service-processes.js'
import { startPostgres, startRedis } from '../../test-support/service-processes.js'
import { createTestDatabase } from '../../test-support/postgres-database.js'
import { onCleanup } from './processes.js'

export interface Services {
  /** The PostgreSQL server's URL (its `postgres` database). */
  postgres(): Promise<string>
  redis(): Promise<string>
  /** A new, empty database on the PostgreSQL server; resolves its URL. */
  freshPostgresDatabase(): Promise<string>
}

export function createServices(runDir: string): Services {
  let postgres: Promise<ServiceProcess> | undefined
  let redis: Promise<ServiceProcess> | undefined
  const start = (name: string, fn: (dir: string) => Promise<ServiceProcess>) => {
    // PostgreSQL runs as its own user when we are root: its directory cannot be inside the
    // run's private one.
    const dir =
      name === 'postgres' ? mkdtempSync(join(tmpdir(), 'ticksupply-bench-pg-')) : join(runDir, name)
    mkdirSync(dir, { recursive: true })
    const started = fn(dir)
    onCleanup(() => {
      rmSync(dir, { recursive: true, force: true })
    })
    void started.then(
      (service) => {
        onCleanup(() => {
          service.stop()
        })
      },
      () => undefined,
    )
    return started
  }
  const postgresUrl = async () => {
    postgres ??= start('postgres', (dir) => startPostgres(dir, { durable: true }))
    return (await postgres).url
  }
  return {
    postgres: postgresUrl,
    async redis() {
      redis ??= start('redis', (dir) => startRedis(dir))
      return (await redis).url
    },
    async freshPostgresDatabase() {
      return createTestDatabase(await postgresUrl(), 'bench')
    },
  }
}
