/** Starts the handler benchmark's server (apps/orders-app.ts) as a pinned child process. */
import type { ChildProcess } from 'node:child_process'
import type { Layer } from '../apps/layers.js'
import type { AnswerTime, AppMessage, ParentMessage } from '../apps/messages.js'
import { captureOutput, exited, forkTs, kill } from './processes.js'

export interface OrdersServer {
  readonly url: string
  readonly pid: number | undefined
  readonly child: ChildProcess
  /** Handler runs and answer times (storm mode only). */
  stats(): Promise<{
    runs: number
    answers: readonly AnswerTime[]
    /** process.hrtime.bigint() of each completion the engine stored, as decimal strings. */
    completions: readonly string[]
  }>
  /** A clean exit (so that a CPU profile gets written); SIGKILL after 10 s. */
  stop(): Promise<void>
}

export interface OrdersServerOptions {
  readonly dir: string
  readonly postgresUrl?: string
  readonly redisUrl?: string
  /** Storm mode: the handler sleeps this long and counts its runs. */
  readonly handlerDelayMs?: number
  readonly nodeFlags?: readonly string[]
}

const APP = new URL('../apps/orders-app.ts', import.meta.url)

export async function startOrdersServer(
  layer: Layer,
  options: OrdersServerOptions,
): Promise<OrdersServer> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BENCH_DIR: options.dir,
    BENCH_HANDLER_DELAY_MS: String(options.handlerDelayMs ?? 0),
    ...(options.postgresUrl === undefined ? {} : { BENCH_POSTGRES_URL: options.postgresUrl }),
    ...(options.redisUrl === undefined ? {} : { BENCH_REDIS_URL: options.redisUrl }),
  }
  const child = forkTs(APP, [layer], {
    env,
    ...(options.nodeFlags ? { nodeFlags: options.nodeFlags } : {}),
  })
  const output = captureOutput(child)
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${layer} server did not start in 30 s: ${output()}`))
    }, 30_000)
    child.on('message', (message: AppMessage) => {
      if (message.type === 'ready') {
        clearTimeout(timer)
        resolve(message.url)
      } else if (message.type === 'error') {
        clearTimeout(timer)
        reject(new Error(`${layer} server failed: ${message.message}`))
      }
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${layer} server exited (${String(code)}, ${String(signal)}): ${output()}`))
    })
  }).catch(async (error: unknown) => {
    await kill(child)
    throw error
  })
  const ask = (message: ParentMessage) => child.send(message)
  return {
    url,
    pid: child.pid,
    child,
    stats: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error('no stats in 10 s'))
        }, 10_000)
        const onMessage = (message: AppMessage) => {
          if (message.type !== 'stats') return
          clearTimeout(timer)
          child.off('message', onMessage)
          resolve({
            runs: message.runs,
            answers: message.answers,
            completions: message.completions,
          })
        }
        child.on('message', onMessage)
        ask({ type: 'stats' })
      }),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      ask({ type: 'stop' })
      const timer = setTimeout(() => void kill(child), 10_000)
      await exited(child)
      clearTimeout(timer)
    },
  }
}
