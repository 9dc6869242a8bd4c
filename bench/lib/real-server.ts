/**
 * The real Ticksupply server (packages/server/dist/main.js) as a pinned child process, with
 * API keys for a set of benchmark accounts and rate limits too large to ever bite.
 */
import type { ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort } from '../../test-support/free-port.js'
import type { MeasuredServer } from './measure.js'
import { captureOutput, exited, kill, spawnNode } from './processes.js'

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const MAIN_JS = join(REPO_ROOT, 'packages/server/dist/main.js')

export interface BenchAccount {
  readonly name: string
  readonly apiKey: string
}

/** `count` accounts, each with one API key. */
export function benchAccounts(count: number): BenchAccount[] {
  return Array.from({ length: count }, (_, index) => {
    const id = String(index).padStart(3, '0')
    return { name: `bench-${id}`, apiKey: `bench-key-${id}-0123456789abcdef` }
  })
}

export interface RealServer extends MeasuredServer {
  readonly child: ChildProcess
  /** A counter of `/metrics` (`ticksupply_idempotency_<name>_total`). */
  metric(name: string): Promise<number>
  /** Sends a signal (SIGKILL, SIGSTOP, SIGCONT). */
  signal(signal: NodeJS.Signals): void
  readonly exited: Promise<void>
}

export interface RealServerOptions {
  /** `sqlite:<file>` or `postgres://...`. */
  readonly databaseUrl: string
  readonly accounts: readonly BenchAccount[]
  /** Where export files go. */
  readonly dir: string
  readonly env?: Readonly<Record<string, string>>
  readonly nodeFlags?: readonly string[]
  readonly pin?: boolean
}

export async function startRealServer(options: RealServerOptions): Promise<RealServer> {
  const port = await freePort()
  const child = spawnNode(MAIN_JS, [], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env['PATH'] ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: options.databaseUrl,
      API_KEYS: options.accounts.map((a) => `${a.name}:${a.apiKey}`).join(','),
      LOG_LEVEL: 'silent',
      RATE_LIMIT_PER_MINUTE: '1000000',
      RATE_LIMIT_PER_HOUR: '100000000',
      ARTIFACTS_DIR: join(options.dir, 'artifacts'),
      ...options.env,
    },
    ...(options.nodeFlags === undefined ? {} : { nodeFlags: options.nodeFlags }),
    ...(options.pin === undefined ? {} : { pin: options.pin }),
  })
  const output = captureOutput(child)
  let stdout = ''
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`the server did not listen in 30 s: ${output()}`))
    }, 30_000)
    const onData = (chunk: Buffer) => {
      stdout += chunk.toString('utf8')
      const match = /Ticksupply API listening on (http:\/\/\S+)/.exec(stdout)
      if (match?.[1] !== undefined) {
        clearTimeout(timer)
        child.stdout?.off('data', onData)
        resolve(match[1])
      }
    }
    child.stdout?.on('data', onData)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`the server exited (${String(code)}, ${String(signal)}): ${output()}`))
    })
  }).catch(async (error: unknown) => {
    await kill(child)
    throw error
  })
  return {
    url,
    pid: child.pid,
    child,
    exited: exited(child),
    async metric(name) {
      const response = await fetch(`${url}/metrics`)
      const text = await response.text()
      const match = new RegExp(`^ticksupply_idempotency_${name}_total (\\d+)$`, 'm').exec(text)
      return Number(match?.[1] ?? 0)
    },
    signal(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      // SIGTERM: the server closes and exits 0, so that a CPU profile gets written.
      child.kill('SIGTERM')
      const timer = setTimeout(() => void kill(child), 10_000)
      await exited(child)
      clearTimeout(timer)
    },
  }
}

/** Every datastream id of the seeded catalog, all pages walked. */
export async function datastreamIds(url: string, apiKey: string): Promise<number[]> {
  const ids: number[] = []
  let token: string | null = null
  for (let page = 0; page < 100; page++) {
    const query: string = token === null ? '?limit=1000' : `?limit=1000&page_token=${token}`
    const response = await fetch(`${url}/v1/datastreams${query}`, {
      headers: { 'x-api-key': apiKey },
    })
    if (response.status !== 200) throw new Error(`GET /v1/datastreams: ${String(response.status)}`)
    const body = (await response.json()) as {
      items: { datastream_id: number }[]
      next_page_token: string | null
    }
    ids.push(...body.items.map((item) => item.datastream_id))
    token = body.next_page_token
    if (token === null) return ids
  }
  throw new Error('more than 100 pages of datastreams')
}

/** POST /v1/subscriptions once; resolves the subscription's id. */
export async function subscribe(
  url: string,
  apiKey: string,
  datastreamId: number,
  key?: string,
): Promise<string> {
  const response = await fetch(`${url}/v1/subscriptions`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-api-key': apiKey,
      ...(key === undefined ? {} : { 'idempotency-key': key }),
    },
    body: JSON.stringify({ datastream_id: datastreamId }),
  })
  const text = await response.text()
  if (response.status !== 201) throw new Error(`subscribe: ${String(response.status)} ${text}`)
  return (JSON.parse(text) as { id: string }).id
}
