import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createClient } from '../src/index.js'
import type { Fault, FaultProxy, ProxiedRequest } from './support/fault-proxy.js'
import { startFaultProxy } from './support/fault-proxy.js'
import { CLIENT_ROOT } from './support/repo-root.js'
import type { RunningServer } from './support/server-process.js'
import { startServer } from './support/server-process.js'

const FIXTURE = join(CLIENT_ROOT, 'test/fixtures/create-subscription.mjs')

let server: RunningServer
let keyDirectory: string
beforeAll(async () => {
  server = await startServer({ accounts: ['crash1', 'crash2'] })
})
afterAll(async () => {
  await server.stop()
})

let proxy: FaultProxy | undefined
afterEach(async () => {
  await proxy?.close()
  proxy = undefined
  rmSync(keyDirectory, { recursive: true, force: true })
})

/** A proxy that applies `first` to the first request and lets every later one pass. */
async function proxyWithFirst(first: Fault): Promise<FaultProxy> {
  proxy = await startFaultProxy({
    targetPort: server.port,
    chooseFault: ({ index }) => (index === 0 ? first : 'pass'),
  })
  return proxy
}

function runChild(account: string, baseUrl: string) {
  const child = spawn(process.execPath, [FIXTURE], {
    env: {
      ...process.env,
      TICKSUPPLY_API_KEY: server.apiKeys.get(account) ?? '',
      TICKSUPPLY_BASE_URL: baseUrl,
      KEY_DIR: keyDirectory,
      DATASTREAM_ID: '5',
      OPERATION_ID: 'subscribe-to-5',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as string | null,
    stdout,
    stderr,
  }))
  return { child, exited }
}

async function countSubscriptions(account: string): Promise<number> {
  const client = createClient({
    apiKey: server.apiKeys.get(account) ?? '',
    baseUrl: server.baseUrl,
  })
  return (await client.subscriptions.list()).total
}

describe('a client killed mid-operation', () => {
  it('completes the operation with the same key on its next run, after the server had run it', async () => {
    keyDirectory = mkdtempSync(join(tmpdir(), 'ticksupply-keys-'))
    const faulty = await proxyWithFirst('hold-response')
    const first = runChild('crash1', faulty.url)
    // The server has created the subscription; its answer is held from the client.
    const [held] = (await once(faulty.events, 'held')) as [ProxiedRequest]
    expect(held.upstreamStatus).toBe(201)
    expect(readdirSync(keyDirectory)).toHaveLength(1)

    first.child.kill('SIGKILL')
    expect((await first.exited).signal).toBe('SIGKILL')

    const second = await runChild('crash1', faulty.url).exited
    expect(second).toMatchObject({ code: 0, stderr: '' })
    const result = JSON.parse(second.stdout) as {
      subscription: { id: string }
      replayed: boolean
      idempotencyKey: string
    }
    expect(result.replayed).toBe(true)
    expect(result.idempotencyKey).toBe(held.idempotencyKey)
    expect(result.subscription.id).toBe(
      (JSON.parse(held.upstreamBody ?? '{}') as { id: string }).id,
    )
    expect(await countSubscriptions('crash1')).toBe(1)
    expect(faulty.requests).toHaveLength(2)
    // The operation got its answer: its key is gone.
    expect(readdirSync(keyDirectory)).toHaveLength(0)
  })

  it('runs the operation once on its next run, when the request never reached the server', async () => {
    keyDirectory = mkdtempSync(join(tmpdir(), 'ticksupply-keys-'))
    const faulty = await proxyWithFirst('hold-request')
    const first = runChild('crash2', faulty.url)
    const [held] = (await once(faulty.events, 'held')) as [ProxiedRequest]
    expect(held.upstreamStatus).toBeUndefined()

    first.child.kill('SIGKILL')
    await first.exited

    const second = await runChild('crash2', faulty.url).exited
    expect(second.code).toBe(0)
    const result = JSON.parse(second.stdout) as { replayed: boolean; idempotencyKey: string }
    expect(result).toMatchObject({ replayed: false, idempotencyKey: held.idempotencyKey })
    expect(await countSubscriptions('crash2')).toBe(1)
  })
})
