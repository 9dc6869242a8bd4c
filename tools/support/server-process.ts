import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort } from '../../test-support/free-port.js'

export { freePort }

/** The repository root, where `packages/server/dist` lives. */
export const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '../../..')
const MAIN_JS = join(REPO_ROOT, 'packages/server/dist/main.js')

export interface ServerProcess {
  readonly url: string
  readonly child: ChildProcess
  readonly pid: number
  stdout(): string
  stderr(): string
  /** Sends `signal` (SIGKILL by default) if the process still runs. */
  kill(signal?: NodeJS.Signals): void
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/**
 * Runs the built server (`npm run build` first) on 127.0.0.1 with `env`, and resolves once it
 * listens. Its output is kept (the last 1 MB of each stream).
 */
export async function startServerProcess(
  env: Readonly<Record<string, string>>,
  port?: number,
): Promise<ServerProcess> {
  const listenOn = port ?? (await freePort())
  const child = spawn(process.execPath, [MAIN_JS], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env['PATH'] ?? '',
      LOG_LEVEL: 'silent',
      ...env,
      HOST: '127.0.0.1',
      PORT: String(listenOn),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  const keep = (text: string) => (text.length > 1_000_000 ? text.slice(-1_000_000) : text)
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out = keep(out + chunk)))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err = keep(err + chunk)))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
    child.once('exit', (code, signal) => {
      done({ code, signal })
    })
  })
  const url = await new Promise<string>((ready, fail) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      fail(new Error(`the server did not start in 30 s: ${err}`))
    }, 30_000)
    const onData = () => {
      const match = /Ticksupply API listening on (http:\/\/\S+)/.exec(out)
      if (match?.[1] !== undefined) {
        clearTimeout(timer)
        child.stdout.off('data', onData)
        ready(match[1])
      }
    }
    child.stdout.on('data', onData)
    void exited.then(({ code, signal }) => {
      clearTimeout(timer)
      fail(
        new Error(
          `the server exited (${String(code)}, ${String(signal)}) before listening: ${err}`,
        ),
      )
    })
  })
  return {
    url,
    child,
    pid: child.pid ?? 0,
    stdout: () => out,
    stderr: () => err,
    kill: (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    },
    exited,
  }
}
