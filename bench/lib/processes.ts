/**
 * Every process the benchmark starts, so that all of them are gone when it ends: normally, on
 * an error, or on Ctrl-C. Servers run pinned to CPU 0 (where `taskset` exists); the load
 * generator is this process, on the other core.
 */
import { execFileSync, fork, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const children = new Set<ChildProcess>()
const cleanups: (() => void)[] = []

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Whether servers are pinned to CPU 0. */
export const PINNED = hasTaskset()

/** Runs once, synchronously, when the benchmark ends (services that are not our children). */
export function onCleanup(fn: () => void): void {
  cleanups.push(fn)
}

/** Kills every child still alive (a stopped one is continued, so that it dies) and runs the cleanups. */
export function killEverything(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT')
      child.kill('SIGKILL')
    }
  }
  children.clear()
  for (const fn of cleanups.splice(0).reverse()) {
    try {
      fn()
    } catch {
      // Keep stopping the rest.
    }
  }
}

let installed = false
/** Makes sure nothing outlives the benchmark, however it ends. */
export function installExitHandlers(): void {
  if (installed) return
  installed = true
  process.on('exit', killEverything)
  // `on`, not `once`: Ctrl-C reaches this process twice (from the terminal and relayed by
  // tsx), and the second must not kill it by default in the middle of the cleanup.
  let stopping = false
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (stopping) return
      stopping = true
      killEverything()
      process.exit(130)
    })
  }
}

function track(child: ChildProcess): ChildProcess {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

export interface SpawnOptions {
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
  /** Pin to CPU 0 (when taskset exists). @default true */
  readonly pin?: boolean
  /** Extra node flags, e.g. `--cpu-prof`. */
  readonly nodeFlags?: readonly string[]
}

/** `node <script> <args>`, pinned, with stdout and stderr piped. */
export function spawnNode(
  script: string,
  args: readonly string[],
  options: SpawnOptions = {},
): ChildProcess {
  const nodeArgs = [...(options.nodeFlags ?? []), script, ...args]
  const pin = (options.pin ?? true) && PINNED
  const child = spawn(
    pin ? 'taskset' : process.execPath,
    pin ? ['-c', '0', process.execPath, ...nodeArgs] : nodeArgs,
    {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  return track(child)
}

/**
 * A TypeScript module of the benchmark run as a pinned child (through tsx), with an IPC channel.
 * `taskset` execs node, so the child's pid is node's own.
 */
export function forkTs(
  module: URL,
  args: readonly string[],
  options: SpawnOptions = {},
): ChildProcess {
  const pin = (options.pin ?? true) && PINNED
  const flags = ['--import', 'tsx', ...(options.nodeFlags ?? [])]
  const child = fork(fileURLToPath(module), [...args], {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    ...(pin
      ? { execPath: 'taskset', execArgv: ['-c', '0', process.execPath, ...flags] }
      : { execArgv: flags }),
  })
  return track(child)
}

/** Resolves when the child has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    child.once('exit', () => {
      resolve()
    })
  })
}

/** SIGKILLs the child (continuing it first if stopped) and waits for it to be gone. */
export async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGCONT')
    child.kill('SIGKILL')
  }
  await exited(child)
}

/** Collects a child's output, for the error message when it fails. */
export function captureOutput(child: ChildProcess): () => string {
  let out = ''
  const keep = (chunk: Buffer) => {
    out = (out + chunk.toString('utf8')).slice(-8_000)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  return () => out
}
