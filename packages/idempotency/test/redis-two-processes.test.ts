import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { describe, expect, inject, it } from 'vitest'
import { send } from './support/http.js'
import { connectRedis, deleteKeys } from './support/redis.js'

const REDIS_APP = fileURLToPath(new URL('./fixtures/redis-app.mjs', import.meta.url))

/** Starts one instance of the app; resolves its base URL once it listens. */
function startInstance(
  redisUrl: string,
  prefix: string,
): { child: ChildProcess; url: Promise<string> } {
  const child = spawn(process.execPath, [REDIS_APP, redisUrl, prefix], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const url = new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (chunk: Buffer) => {
      resolve(chunk.toString().trim())
    })
    child.once('exit', (code) => {
      reject(new Error(`the app exited with ${String(code)} before it listened`))
    })
  })
  return { child, url }
}

describe('Two processes sharing one Redis', () => {
  it('run the operation of 200 concurrent requests with one key exactly once', async () => {
    const redisUrl = inject('redisUrl')
    const prefix = `test:${randomBytes(6).toString('hex')}:`
    const instances = [startInstance(redisUrl, prefix), startInstance(redisUrl, prefix)]
    try {
      const urls = await Promise.all(instances.map((instance) => instance.url))
      const key = randomUUID()
      const answers = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          send(`${urls[i % 2] ?? ''}/orders`, { key, body: '{"item":"widget"}' }),
        ),
      )
      const runs = await Promise.all(
        urls.map(async (url) => {
          const answer = await send(`${url}/runs`, { method: 'GET' })
          return (JSON.parse(answer.text) as { runs: number }).runs
        }),
      )
      expect(runs.reduce((sum, count) => sum + count, 0)).toBe(1)
      expect(answers.filter((answer) => answer.status === 201)).toHaveLength(200)
      expect(new Set(answers.map((answer) => answer.text)).size).toBe(1)
      expect(
        answers.filter((answer) => answer.headers.get('idempotent-replayed') === 'true'),
      ).toHaveLength(199)
    } finally {
      for (const instance of instances) instance.child.kill('SIGKILL')
      const client = await connectRedis(redisUrl)
      await deleteKeys(client, prefix)
      client.destroy()
    }
  })
})
