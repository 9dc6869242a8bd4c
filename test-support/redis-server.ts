/**
 * A redis-server of a test's own, on 127.0.0.1 and a free port, for tests that stop, restart or
 * reconfigure their server (the run's shared one, from services.ts, must stay up). It keeps its
 * port across a restart, so clients reconnect to it by themselves.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './free-port.js'
import { waitForPort } from './service-processes.js'

export interface TestRedisServer {
  readonly url: string
  readonly port: number
  /** Kills the server at once (SIGKILL), as a crash would. Resolves once it has exited. */
  kill(): Promise<void>
  /** Starts it again on the same port and directory (and so on its append-only file). */
  start(): Promise<void>
  /** Kills it and removes its directory. */
  close(): Promise<void>
}

/**
 * `args` are added to the server's command line (e.g. `['--maxmemory-policy', 'allkeys-lru']`,
 * or `['--appendonly', 'yes', '--appendfsync', 'always']` for writes that survive a kill).
 */
export async function startTestRedisServer(args: readonly string[] = []): Promise<TestRedisServer> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'ticksupply-redis-'))
  let child: ChildProcess | undefined

  const start = async () => {
    const started = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, ...args],
      { stdio: 'ignore' },
    )
    child = started
    await waitForPort(port, 15_000)
  }
  const kill = async () => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise<void>((resolve) => {
      running.once('exit', () => {
        resolve()
      })
    })
    running.kill('SIGKILL')
    await exited
  }
  await start()
  return {
    url: `redis://127.0.0.1:${String(port)}`,
    port,
    kill,
    start,
    async close() {
      await kill()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export interface TestRedisCluster {
  /** The URL of every master: hand any of them to `createCluster({ rootNodes })`. */
  readonly urls: readonly string[]
  close(): Promise<void>
}

/**
 * A Redis Cluster of `masters` servers (no replicas) on 127.0.0.1, its slots spread over them
 * by `redis-cli --cluster create`; resolves once every node reports the cluster `ok`.
 */
export async function startTestRedisCluster(masters = 3): Promise<TestRedisCluster> {
  const servers: TestRedisServer[] = []
  try {
    for (let i = 0; i < masters; i++) {
      servers.push(
        await startTestRedisServer([
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--appendonly',
          'no',
        ]),
      )
    }
    await run('redis-cli', [
      '--cluster',
      'create',
      ...servers.map((server) => `127.0.0.1:${String(server.port)}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ])
    const deadline = Date.now() + 30_000
    for (const server of servers) {
      for (;;) {
        const info = await run('redis-cli', ['-p', String(server.port), 'CLUSTER', 'INFO'])
        if (info.includes('cluster_state:ok')) break
        if (Date.now() > deadline) throw new Error('the test cluster did not come up in time')
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
  } catch (error) {
    await Promise.all(servers.map((server) => server.close()))
    throw error
  }
  return {
    urls: servers.map((server) => server.url),
    async close() {
      await Promise.all(servers.map((server) => server.close()))
    },
  }
}

function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.once('error', reject)
    child.once('exit', (code) => {
      if (code === 0) resolve(output)
      else reject(new Error(`${command} ${args.join(' ')} exited with ${String(code)}: ${output}`))
    })
  })
}
