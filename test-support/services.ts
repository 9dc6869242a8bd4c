/**
 * Vitest global setup: starts a real PostgreSQL and a real Redis on 127.0.0.1 and free ports,
 * in a temporary directory, for the whole run, and stops them at the end. Tests read their
 * URLs with `inject('postgresUrl')` and `inject('redisUrl')`.
 *
 * The tests need PostgreSQL's semantics, not its durability: commits do not wait for fsync.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { startPostgres, startRedis } from './service-processes.js'

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string
    redisUrl: string
  }
}

export default async function setup(project: TestProject): Promise<() => void> {
  const dir = mkdtempSync(join(tmpdir(), 'ticksupply-services-'))
  const [postgres, redis] = await Promise.all([
    startPostgres(dir, { durable: false }),
    startRedis(dir),
  ])
  project.provide('postgresUrl', postgres.url)
  project.provide('redisUrl', redis.url)
  return () => {
    try {
      postgres.stop()
    } finally {
      redis.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
