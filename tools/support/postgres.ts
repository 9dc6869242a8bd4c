import { execFileSync } from 'node:child_process'
import { chownSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { freePort } from './server-process.js'

const isRoot = process.getuid?.() === 0

/** Runs a PostgreSQL binary, as the postgres user when we are root (initdb refuses root). */
function run(binary: string, args: string[]): void {
  const [command, fullArgs] = isRoot
    ? ['runuser', ['-u', 'postgres', '--', binary, ...args]]
    : [binary, args]
  execFileSync(command, fullArgs, { stdio: ['ignore', 'ignore', 'pipe'] })
}

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
  if (isRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim())
    chownSync(dir, uid, gid)
  }
  const data = join(dir, 'pgdata')
  run('initdb', [
    '-D',
    data,
    '-U',
    'postgres',
    '--auth=trust',
    '--no-sync',
    '-E',
    'UTF8',
    '--locale=C',
  ])
  const port = await freePort()
  run('pg_ctl', [
    '-D',
    data,
    '-l',
    join(dir, 'postgres.log'),
    '-w',
    '-t',
    '60',
    'start',
    '-o',
    // A throwaway server: what it writes need not survive a crash of the machine.
    `-h 127.0.0.1 -p ${String(port)} -k ${dir} -c max_connections=200 -c fsync=off -c full_page_writes=off`,
  ])
  const url = `postgres://postgres@127.0.0.1:${String(port)}/postgres`
  let databases = 0
  return {
    url,
    async createDatabase() {
      const name = `tool_${String(process.pid)}_${String(++databases)}`
      const admin = new pg.Client({ connectionString: url })
      await admin.connect()
      try {
        await admin.query(`CREATE DATABASE ${name}`)
      } finally {
        await admin.end()
      }
      const database = new URL(url)
      database.pathname = `/${name}`
      return database.toString()
    },
    stop() {
      try {
        run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop'])
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  }
}
