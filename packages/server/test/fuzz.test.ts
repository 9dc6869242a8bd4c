/**
 * A bounded slice of `npm run fuzz` in CI: 3,000 requests generated from the OpenAPI
 * description of a live server process (wrong types, missing and extra fields, huge numbers,
 * unicode, deep nesting, bad JSON, duplicate headers, encoded paths, absolute-form targets,
 * malformed HTTP), each answer judged: no 5xx, no error outside the envelope, no unauthenticated
 * 2xx on /v1, an X-Request-Id on every answer.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runFuzz } from '../../../tools/fuzz/run.js'
import type { SpawnedServer } from './support/server.js'
import { ACME_KEY, GLOBEX_KEY, freshDatabase, send, spawnServer } from './support/server.js'

describe('the fuzzer, 3,000 cases', () => {
  let server: SpawnedServer
  let cleanup: () => void

  beforeAll(async () => {
    const database = await freshDatabase()
    cleanup = database.cleanup
    server = await spawnServer({
      DATABASE_URL: database.url,
      ARTIFACTS_DIR: `${database.dir}/artifacts`,
      LOG_LEVEL: 'error',
    })
  })
  afterAll(async () => {
    server.kill('SIGKILL')
    await server.exited
    cleanup()
  })

  it('finds no 5xx, no bare error, no unauthenticated success, and leaves the server ready', async () => {
    // A fixed seed would test the same 3,000 cases forever; the seed is printed with every
    // finding, and FUZZ_SEED=N (or `npm run fuzz -- --seed N --cases 3000`) replays it.
    const seed = Number(process.env['FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31))
    const report = await runFuzz({
      url: server.url,
      apiKey: ACME_KEY,
      otherApiKey: GLOBEX_KEY,
      cases: 3_000,
      seed,
      concurrency: 4,
    })
    expect(
      report.findings,
      `seed ${String(seed)}: ${JSON.stringify(report.findings, null, 1)}`,
    ).toEqual([])
    // Every operation of the description was aimed at, and most cases got an answer.
    expect(report.endpoints).toBeGreaterThanOrEqual(25)
    expect(Object.keys(report.operations)).toHaveLength(report.endpoints)
    expect(report.statuses['closed'] ?? 0).toBeLessThan(report.cases / 10)
    expect((await send(`${server.url}/readyz`, { apiKey: null })).status).toBe(200)
    expect(server.child.exitCode).toBeNull()
    // Nothing logged at error level (a 5xx, a failed export or purge).
    expect(server.stdout()).not.toContain('"level":50')
    expect(server.stderr()).toBe('')
  })
})

describe('the fuzzer itself', () => {
  it('reports a server that fails: a 5xx, a bare error, an unauthenticated 2xx, no request id', async () => {
    // A deliberately careless server: answers without a key, with a 500 on bad JSON, and with
    // text errors. Plain node:http on 127.0.0.1.
    const document = {
      paths: {
        '/v1/things': {
          get: {},
          post: {
            requestBody: {
              content: {
                'application/json': {
                  schema: { type: 'object', properties: { n: { type: 'integer' } } },
                },
              },
            },
          },
        },
      },
    }
    const careless = createServer((request, response) => {
      let body = ''
      request.on('data', (chunk: Buffer) => (body += chunk.toString()))
      request.on('end', () => {
        response.setHeader('x-request-id', 'req_0123456789abcdef')
        if (request.url === '/openapi.json') {
          response.setHeader('content-type', 'application/json')
          response.end(JSON.stringify(document))
          return
        }
        if (request.method === 'POST') {
          try {
            JSON.parse(body)
            response.statusCode = 201
            response.end('{}')
          } catch {
            response.removeHeader('x-request-id')
            response.statusCode = 500
            response.end('oops')
          }
          return
        }
        if (request.url === '/v1/things') {
          response.end('[]')
          return
        }
        response.statusCode = 404
        response.end('not found')
      })
    })
    await new Promise<void>((ready) => careless.listen(0, '127.0.0.1', ready))
    try {
      const { port } = careless.address() as AddressInfo
      const report = await runFuzz({
        url: `http://127.0.0.1:${String(port)}`,
        apiKey: ACME_KEY,
        otherApiKey: GLOBEX_KEY,
        cases: 400,
        seed: 1,
        concurrency: 2,
      })
      expect(Object.keys(report.findingsByKind).sort()).toEqual([
        'bare_error',
        'no_request_id',
        'server_error',
        'unauthenticated_success',
      ])
    } finally {
      careless.closeAllConnections()
      await new Promise((closed) => careless.close(closed))
    }
  })
})
