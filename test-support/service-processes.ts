/**
 * PostgreSQL and Redis as processes of our own, on 127.0.0.1 and free ports, with their data in
 * a directory the caller owns. The vitest global setup (services.ts) and the benchmarks
 * (bench/) start them the same way; only the durability settings differ.
 *
 * PostgreSQL comes from the machine's server binaries (initdb, pg_ctl); as root, they run as
 * the `postgres` user, since initdb refuses root. Redis comes from Debian's redis-server,
 * installed here with apt-get when it is missing and we are root.
 */
import { execFileSync, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { chownSync } from 'node:fs'
import { join } from 'node:path'
import { connect } from 'node:net'
import { freePort } from './free-port.js'

export interface ServiceProcess {
  readonly url: string
  /** Stops the service now (synchronously, so that it can run from a process `exit` handler). */
  stop(): void
}

export interface PostgresOptions {
  /**
   * `true`: every commit waits for its fsync (`fsync`, `synchronous_commit` and
   * `full_page_writes` on, PostgreSQL's defaults), as in production. `false`: none of them, for
   * test suites that only need the semantics.
   */
  readonly durable: boolean
  /** @default 300 */
  readonly maxConnections?: number
}

const isRoot = process.getuid?.() === 0

function has(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

function postgresUser(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim())
  return { uid, gid }
}

/** Runs a PostgreSQL binary, as the postgres user when we are root. */
function pgCommand(binary: string, args: string[]): { command: string; args: string[] } {
  return isRoot
    ? { command: 'runuser', args: ['-u', 'postgres', '--', binary, ...args] }
    : { command: binary, args }
}

function run(binary: string, args: string[]): void {
  const { command, args: fullArgs } = pgCommand(binary, args)
  execFileSync(command, fullArgs, { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** Resolves once something accepts connections on 127.0.0.1:`port`. */
export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => {
        resolve(false)
      })
    })
    if (ok) return
    if (Date.now() > deadline)
      throw new Error(`nothing listened on 127.0.0.1:${String(port)} in time`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A fresh cluster in `dir/pgdata`, listening on 127.0.0.1 only (and a socket in `dir`). */
export async function startPostgres(
  dir: string,
  options: PostgresOptions,
): Promise<ServiceProcess> {
  const data = join(dir, 'pgdata')
  if (isRoot) {
    const { uid, gid } = postgresUser()
    chownSync(dir, uid, gid)
  }
  // --no-sync concerns initdb's own files only, not the server's commits.
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
  const durability = options.durable
    ? '-c fsync=on -c synchronous_commit=on -c full_page_writes=on'
    : '-c fsync=off -c synchronous_commit=off -c full_page_writes=off'
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
    `-h 127.0.0.1 -p ${String(port)} -k ${dir} ${durability} -c max_connections=${String(options.maxConnections ?? 300)}`,
  ])
  let stopped = false
  return {
    url: `postgres://postgres@127.0.0.1:${String(port)}/postgres`,
    stop: () => {
      if (stopped) return
      stopped = true
      run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop'])
    },
  }
}

/** A Redis with no persistence and no eviction, on 127.0.0.1 only. */
export async function startRedis(dir: string): Promise<ServiceProcess> {
  if (!has('redis-server')) {
    if (!isRoot)
      throw new Error(
        "redis-server is missing: install Debian's redis-server (apt-get install redis-server)",
      )
    execFileSync(
      'sh',
      [
        '-c',
        'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server',
      ],
      {
        stdio: 'inherit',
      },
    )
  }
  const port = await freePort()
  const child: ChildProcess = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--maxmemory-policy',
      'noeviction',
    ],
    { stdio: 'ignore' },
  )
  try {
    await waitForPort(port, 15_000)
  } catch (error) {
    child.kill('SIGKILL')
    throw error
  }
  return {
    url: `redis://127.0.0.1:${String(port)}`,
    stop: () => {
      child.kill('SIGKILL')
    },
  }
}
