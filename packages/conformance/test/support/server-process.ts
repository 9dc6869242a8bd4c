import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { REPO_ROOT, SERVER_MAIN } from './paths.js'

/** Two API keys of one account (acme) and one of another (globex). */
export const ACME_KEY = 'acme-key-0123456789abcdef'
export const ACME_SECOND_KEY = 'acme-second-key-0123456789'
export const GLOBEX_KEY = 'globex-key-0123456789abcd'

export interface ServerProcess {
  readonly url: string
  stop(): Promise<void>
}

/**
 * Runs the real server, `node packages/server/dist/main.js`, on 127.0.0.1 and any free port,
 * with the three API keys, on `databaseUrl` (a fresh SQLite file when undefined) and the extra
 * environment; resolves once it prints where it listens. `stop` kills it and removes its files.
 */
export async function startServerProcess(
  databaseUrl: string | undefined,
  env: Readonly<Record<string, string>> = {},
): Promise<ServerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'conformance-server-'))
  const child = spawn(process.execPath, [SERVER_MAIN], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env['PATH'] ?? '',
      HOST: '127.0.0.1',
      PORT: '0',
      DATABASE_URL: databaseUrl ?? `sqlite:${join(dir, 'ticksupply.db')}`,
      ARTIFACTS_DIR: join(dir, 'artifacts'),
      API_KEYS: `acme:${ACME_KEY},acme:${ACME_SECOND_KEY},globex:${GLOBEX_KEY}`,
      LOG_LEVEL: 'silent',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      resolve()
    })
  })
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
    rmSync(dir, { recursive: true, force: true })
  }
  let out = ''
  let err = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk))
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`the server did not start: ${err}`))
      }, 30_000)
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk
        const match = /listening on (http:\/\/\S+)/.exec(out)
        if (match?.[1] !== undefined) {
          clearTimeout(timer)
          resolve(match[1])
        }
      })
      void exited.then(() => {
        clearTimeout(timer)
        reject(new Error(`the server exited before listening: ${err}`))
      })
    })
    return { url, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
