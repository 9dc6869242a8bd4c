/**
 * Vitest global setup: starts a real PostgreSQL and a real Redis on 127.0.0.1 and free ports,
 * in a temporary directory, for the whole run, and stops them at the end. Tests read their
 * URLs with `inject('postgresUrl')` and `inject('redisUrl')`.
 *
 * PostgreSQL comes from the machine's server binaries (initdb, pg_ctl); as root, they run as
 * the `postgres` user, since initdb refuses root. Redis comes from Debian's redis-server,
 * installed here with apt-get when it is missing and we are root.
 */
import { execFileSync, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { chownSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:net'
import type { TestProject } from 'vitest/node'
import { freePort } from './free-port.js'

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string
    redisUrl: string
  }
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

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
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

async function startPostgres(dir: string): Promise<{ url: string; stop: () => void }> {
  const data = join(dir, 'pgdata')
  if (isRoot) {
    const { uid, gid } = postgresUser()
    chownSync(dir, uid, gid)
  }
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
    `-h 127.0.0.1 -p ${String(port)} -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300`,
  ])
  return {
    url: `postgres://postgres@127.0.0.1:${String(port)}/postgres`,
    stop: () => {
      run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop'])
    },
  }
}

async function startRedis(dir: string): Promise<{ url: string; stop: () => void }> {
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
  await waitForPort(port, 15_000)
  return {
    url: `redis://127.0.0.1:${String(port)}`,
    stop: () => {
      child.kill('SIGKILL')
    },
  }
}

export default async function setup(project: TestProject): Promise<() => void> {
  const dir = mkdtempSync(join(tmpdir(), 'ticksupply-services-'))
  const [postgres, redis] = await Promise.all([startPostgres(dir), startRedis(dir)])
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
