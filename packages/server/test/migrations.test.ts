/**
 * A database migrated by a newer version: this one runs on it as it is (a rollback of a
 * deployment must start), and says so.
 */
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { parseDatabaseUrl } from '../src/config.js'
import { migrate } from '../src/db/migrations.js'
import { openDatabase } from '../src/db/open-database.js'
import { spawnServer, tempDatabase } from './support/server.js'

describe('a database migrated by a newer version', () => {
  it('is reported by the migration, and served with a warning naming the migrations', async () => {
    const database = tempDatabase()
    try {
      {
        const opened = openDatabase(parseDatabaseUrl(database.url))
        expect(await migrate(opened.db, 1)).toEqual({ unknownMigrations: [] })
        await opened.db.close()
      }
      const raw = new Database(database.filename)
      raw
        .prepare('INSERT INTO schema_migrations (id, name, applied_at) VALUES (?, ?, 2), (?, ?, 2)')
        .run(1000, 'from the future', 999, 'also')
      raw.close()
      {
        const opened = openDatabase(parseDatabaseUrl(database.url))
        expect(await migrate(opened.db, 3)).toEqual({ unknownMigrations: [999, 1000] })
        await opened.db.close()
      }
      const server = await spawnServer({ DATABASE_URL: database.url, LOG_LEVEL: 'warn' })
      try {
        const ready = await fetch(`${server.url}/readyz`)
        expect(ready.status).toBe(200)
        const warnings = server
          .stdout()
          .split('\n')
          .filter((line) => line.includes('migrated by a newer version'))
        expect(warnings).toHaveLength(1)
        expect(JSON.parse(warnings[0] ?? '{}')).toMatchObject({
          level: 40,
          unknownMigrations: [999, 1000],
        })
      } finally {
        server.kill()
        await server.exited
      }
    } finally {
      database.cleanup()
    }
  })
})
