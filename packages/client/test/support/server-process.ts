import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './free-port.js'
import { REPO_ROOT } from './repo-root.js'

export interface RunningServer {
  readonly baseUrl: string
  readonly port: number
  /** The API key of each account, by account name. */
  readonly apiKeys: ReadonlyMap<string, string>
  stop(): Promise<void>
}

export interface StartServerOptions {
  /** Account names; each gets one API key. */
  readonly accounts: readonly string[]
  /** Extra environment, e.g. fault injection settings of the server. */
  readonly env?: Readonly<Record<string, string>>
}

/**
 * Starts the real server (`node packages/server/dist/main.js`, built by `tsc -b`) on
 * 127.0.0.1 with a fresh SQLite file, and resolves once it answers `GET /v1/exchanges`.
 */
export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const directory = mkdtempSync(join(tmpdir(), 'ticksupply-client-test-'))
  const apiKeys = new Map(
    options.accounts.map((account, index) => [
      account,
      `test_${account}_${String(index).padStart(4, '0')}_key_0123456789`,
    ]),
  )
  // A port found free can be taken before the server binds it; then try another.
  for (let tries = 1; ; tries++) {
    const port = await freePort()
    const child = spawn(process.execPath, [join(REPO_ROOT, 'packages/server/dist/main.js')], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        ...options.env,
        HOST: '127.0.0.1',
        PORT: String(port),
        DATABASE_URL: `sqlite:${join(directory, 'ticksupply.db')}`,
        API_KEYS: [...apiKeys].map(([account, key]) => `${account}:${key}`).join(','),
        LOG_LEVEL: 'silent',
        NODE_ENV: 'test',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    const baseUrl = `http://127.0.0.1:${String(port)}`
    const firstKey = apiKeys.values().next().value ?? 'none'
    const ready = await waitUntilReady(baseUrl, firstKey, child)
    if (ready) {
      return {
        baseUrl,
        port,
        apiKeys,
        async stop() {
          await stopChild(child)
          rmSync(directory, { recursive: true, force: true })
        },
      }
    }
    await stopChild(child)
    if (tries >= 3) throw new Error(`The server did not start: ${stderr}`)
  }
}

async function waitUntilReady(
  baseUrl: string,
  apiKey: string,
  child: ChildProcess,
): Promise<boolean> {
  const giveUpAtMs = Date.now() + 20_000
  while (Date.now() < giveUpAtMs) {
    if (child.exitCode !== null || child.signalCode !== null) return false
    try {
      const response = await fetch(`${baseUrl}/v1/exchanges`, {
        headers: { 'x-api-key': apiKey },
        signal: AbortSignal.timeout(1_000),
      })
      await response.arrayBuffer()
      if (response.status === 200) return true
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return false
}

export function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    child.once('exit', () => {
      resolve()
    })
    child.kill('SIGKILL')
  })
}
