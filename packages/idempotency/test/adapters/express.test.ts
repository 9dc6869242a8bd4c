/** What only the Express adapter has; the contract itself is adapter-contract.test.ts. */
import { IncomingMessage, ServerResponse } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Socket } from 'node:net'
import { Readable, pipeline } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { gzipSync } from 'node:zlib'
import express from 'express'
import type { Express } from 'express'
import { afterEach, describe, expect, it } from 'vitest'
import { createIdempotencyEngine } from '@ticksupply/idempotency'
import type { PostgresTransaction } from '@ticksupply/idempotency/stores/postgres'
import type { SqliteStore } from '@ticksupply/idempotency/stores/sqlite'
import { expressIdempotency, keepRawBody } from '@ticksupply/idempotency/express'
import { newKey, send, sendAndAbandon } from '../support/http.js'
import { openTemporarySqlite } from '../support/sqlite.js'

let cleanup: (() => Promise<void>) | undefined

/** Holds code that only the compiler checks (its @ts-expect-error lines); never runs it. */
function compileOnly(code: (...args: never[]) => unknown): void {
  expect(code).toBeTypeOf('function')
}

afterEach(async () => {
  await cleanup?.()
  cleanup = undefined
})

/** A keyed POST whose body carries no Content-Type (fetch sets none for bytes); its status. */
async function sendUntyped(url: string, key: string, body: string): Promise<number> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'idempotency-key': key },
    body: Buffer.from(body),
  })
  await response.arrayBuffer()
  return response.status
}

/** An Express app behind the adapter, without an error handler of its own. */
async function start(
  routes: (
    app: Express,
    idempotency: ReturnType<typeof expressIdempotency>,
    store: SqliteStore,
  ) => void,
  options: { maxStoredBodyBytes?: number; parse?: boolean } = {},
): Promise<string> {
  const sqlite = openTemporarySqlite()
  const app = express()
  if (options.parse !== false) app.use(express.json({ verify: keepRawBody }))
  const idempotency = expressIdempotency({
    engine: createIdempotencyEngine({ store: sqlite.store }),
    scope: () => 'tenant',
    ...(options.maxStoredBodyBytes === undefined
      ? {}
      : { maxStoredBodyBytes: options.maxStoredBodyBytes }),
  })
  routes(app, idempotency, sqlite.store)
  const server: Server = app.listen(0, '127.0.0.1')
  await new Promise<void>((resolve) => server.once('listening', resolve))
  cleanup = async () => {
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve()
      })
      server.closeAllConnections()
    })
    await sqlite.close()
  }
  return `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`
}

describe('the Express adapter', () => {
  it('stores a piped stream and chunked writes whole, and replays the same bytes', async () => {
    const runs = { stream: 0, chunks: 0 }
    const url = await start((app, idempotency) => {
      app.use(idempotency)
      app.post('/stream', (_req, res) => {
        runs.stream++
        res.status(201).type('text/plain')
        Readable.from(['one ', 'two ', 'three']).pipe(res)
      })
      app.post('/chunks', (_req, res) => {
        runs.chunks++
        res.writeHead(202, { 'content-type': 'text/plain', location: '/jobs/1' })
        res.write('héllo ', 'utf8')
        res.write(Buffer.from('wörld'))
        res.end()
      })
    })
    for (const path of ['/stream', '/chunks']) {
      const key = newKey()
      const original = await send(`${url}${path}`, { key })
      const replay = await send(`${url}${path}`, { key })
      expect(replay.status).toBe(original.status)
      expect(replay.body.equals(original.body)).toBe(true)
      expect(replay.headers.get('content-type')).toBe(original.headers.get('content-type'))
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
    }
    expect(runs).toEqual({ stream: 1, chunks: 1 })
    const replayed = await send(`${url}/chunks`, { key: newKey() })
    expect(replayed.text).toBe('héllo wörld')
    expect(replayed.headers.get('location')).toBe('/jobs/1')
  })

  it('stores the bytes a chunk had when written, though the handler reuses its buffer after the callback', async () => {
    let runs = 0
    const url = await start((app, idempotency) => {
      app.use(idempotency)
      app.post('/reused', (_req, res) => {
        runs++
        res.status(201).type('text/plain')
        const buffer = Buffer.from('AAAA')
        res.write(buffer, () => {
          // Written, says the callback: the buffer is the handler's again.
          buffer.fill('C')
          res.end(buffer.fill('B'), () => undefined)
          buffer.fill('D')
        })
      })
    })
    const key = newKey()
    const original = await send(`${url}/reused`, { key })
    const replay = await send(`${url}/reused`, { key })
    expect([original.text, replay.text]).toEqual(['AAAABBBB', 'AAAABBBB'])
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    expect(runs).toBe(1)
  })

  it('gives the key back when the client leaves while a piped body is being written', async () => {
    let runs = 0
    const closed: string[] = []
    const url = await start((app, idempotency) => {
      app.use(idempotency)
      app.post('/slow-stream', (_req, res) => {
        runs++
        res.status(200).type('text/plain')
        let sent = 0
        const rows = new Readable({
          read() {
            setTimeout(() => this.push(sent++ < 8 ? `row ${String(sent)}\n` : null), 40)
          },
        })
        if (runs === 1) {
          pipeline(rows, res, (error) => closed.push(error?.code ?? 'done'))
        } else {
          rows.pipe(res)
        }
      })
    })
    const key = newKey()
    await sendAndAbandon(`${url}/slow-stream`, { key, body: '{}', afterMs: 100 })
    for (let i = 0; i < 100 && closed.length === 0; i++) await sleep(20)
    expect(closed).toEqual(['ERR_STREAM_PREMATURE_CLOSE'])
    // Nothing whole was stored: the retry runs again and gets the whole body.
    const retry = await send(`${url}/slow-stream`, { key, body: '{}' })
    expect(retry.status).toBe(200)
    expect(retry.headers.get('idempotent-replayed')).toBeNull()
    expect(retry.text).toBe(Array.from({ length: 8 }, (_, i) => `row ${String(i + 1)}\n`).join(''))
    expect(runs).toBe(2)
    // And that whole answer is the key's from now on.
    const replay = await send(`${url}/slow-stream`, { key, body: '{}' })
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    expect(replay.text).toBe(retry.text)
    expect(runs).toBe(2)
  })

  it('treats headers as sent once a body is written: a res.send or a throw after res.write cuts the answer, as without a key', async () => {
    const runs = { send: 0, throw: 0 }
    const headerErrors: string[] = []
    const url = await start((app, idempotency) => {
      app.use(idempotency)
      app.post('/write-then-send', (_req, res) => {
        runs.send++
        res.write('a')
        try {
          res.send('b')
        } catch (error) {
          headerErrors.push((error as { code?: string }).code ?? 'none')
          throw error
        }
      })
      app.post('/write-then-throw', (_req, res) => {
        runs.throw++
        res.write('partial')
        throw new Error('failed mid-answer')
      })
    })
    for (const path of ['/write-then-send', '/write-then-throw']) {
      const key = newKey()
      for (let attempt = 0; attempt < 2; attempt++) {
        // No answer with a Content-Length of another body: the connection is cut.
        await expect(send(`${url}${path}`, { key })).rejects.toThrow()
      }
    }
    // Nothing was stored: each attempt ran.
    expect(runs).toEqual({ send: 2, throw: 2 })
    expect(headerErrors).toEqual(['ERR_HTTP_HEADERS_SENT', 'ERR_HTTP_HEADERS_SENT'])
  })

  it('keeps the answer as sent once it is ended or written: a later status, header or error answer changes nothing', async () => {
    const runs = { thrown: 0, status: 0 }
    const url = await start((app, idempotency) => {
      app.use(idempotency)
      app.post('/thrown-after-json', (_req, res) => {
        runs.thrown++
        res.status(201).json({ id: 'ord_1' })
        throw new Error('failed after answering')
      })
      app.post('/status-after-write', (_req, res) => {
        runs.status++
        res.write('a')
        res.statusCode = 503
        expect(() => res.writeHead(500)).toThrow('Cannot set headers after they are sent')
        res.end('b')
      })
      // The usual error handler: an answer already on its way is Express's to finish.
      app.use(
        (
          error: Error,
          _req: express.Request,
          res: express.Response,
          next: express.NextFunction,
        ) => {
          if (res.headersSent) {
            next(error)
            return
          }
          res.status(500).json({ error: 'internal' })
        },
      )
    })
    for (const [path, status, text] of [
      ['/thrown-after-json', 201, '{"id":"ord_1"}'],
      ['/status-after-write', 200, 'ab'],
    ] as const) {
      const key = newKey()
      const first = await send(`${url}${path}`, { key })
      const again = await send(`${url}${path}`, { key })
      expect([first.status, first.text]).toEqual([status, text])
      expect([again.status, again.text]).toEqual([status, text])
      expect(again.headers.get('idempotent-replayed')).toBe('true')
    }
    expect(runs).toEqual({ thrown: 1, status: 1 })
  })

  it('keeps the wrappers of a middleware mounted after it', async () => {
    const url = await start((app, idempotency) => {
      const stamp = (_req: unknown, res: ServerResponse, next: () => void) => {
        const writeHead = res.writeHead.bind(res)
        res.writeHead = ((...args: Parameters<ServerResponse['writeHead']>) => {
          res.setHeader('x-stamped', 'yes')
          return writeHead(...args)
        }) as ServerResponse['writeHead']
        next()
      }
      app.post('/stamped', idempotency, stamp, (_req, res) => {
        res.status(201).json({ ok: true })
      })
    })
    const answer = await send(`${url}/stamped`, { key: newKey() })
    expect([answer.status, answer.headers.get('x-stamped')]).toEqual([201, 'yes'])
  })

  it('cuts the connection, and goes on serving, when a middleware mounted after it throws as the answer goes out', async () => {
    const url = await start((app, idempotency) => {
      const throwsAtWriteHead = (_req: unknown, res: ServerResponse, next: () => void) => {
        res.writeHead = () => {
          throw new Error('failed in writeHead')
        }
        next()
      }
      app.post('/throwing', idempotency, throwsAtWriteHead, (_req, res) => {
        try {
          res.status(201).json({ ok: true })
        } catch {
          // Without a key the throw comes here; with one, it comes when the stored answer goes out.
        }
      })
      app.post('/plain', (_req, res) => {
        res.status(201).json({ ok: true })
      })
    })
    await expect(send(`${url}/throwing`, { key: newKey() })).rejects.toThrow()
    expect((await send(`${url}/plain`, { key: newKey() })).status).toBe(201)
  })

  it('stores the answer of a handler that writes by itself after its client left: the retry replays it', async () => {
    let runs = 0
    let ended = 0
    const url = await start((app, idempotency) => {
      app.use(idempotency)
      app.post('/rows', async (_req, res) => {
        runs++
        for (let row = 0; row < 5; row++) {
          res.write(`row${String(row)}\n`)
          await sleep(40)
        }
        res.end('done\n', () => ended++)
      })
    })
    const key = newKey()
    await sendAndAbandon(`${url}/rows`, { key, body: '{}', afterMs: 60 })
    for (let i = 0; i < 100 && ended === 0; i++) await sleep(20)
    const retry = await send(`${url}/rows`, { key, body: '{}' })
    expect(retry.headers.get('idempotent-replayed')).toBe('true')
    expect(retry.text).toBe('row0\nrow1\nrow2\nrow3\nrow4\ndone\n')
    expect(runs).toBe(1)
  })

  it('replays a body the handler encoded itself with its Content-Encoding', async () => {
    let runs = 0
    const url = await start((app, idempotency) => {
      app.post('/orders', idempotency, (_request, res) => {
        runs++
        res
          .status(201)
          .set('content-encoding', 'gzip')
          .type('application/json')
          .send(gzipSync('{"order":"pre-compressed"}'))
      })
    })
    const key = newKey()
    const first = await send(`${url}/orders`, { key, body: '{"item":"widget"}' })
    const replay = await send(`${url}/orders`, { key, body: '{"item":"widget"}' })
    expect(runs).toBe(1)
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    for (const answer of [first, replay]) {
      expect(answer.headers.get('content-encoding')).toBe('gzip')
      expect(answer.text).toBe('{"order":"pre-compressed"}')
    }
  })

  it("answers the store's refusal without the operation's Content-Encoding or Location", async () => {
    let runs = 0
    const url = await start((app, idempotency, store) => {
      app.post('/orders', idempotency, (_request, res) => {
        runs++
        // The store goes away mid-operation (its claims with it): the completion is refused.
        store.close()
        res
          .status(201)
          .set({ 'content-encoding': 'gzip', location: '/orders/1', 'content-language': 'en' })
          .type('application/json')
          .send(gzipSync('{"order":1}'))
      })
    })
    const answer = await send(`${url}/orders`, { key: newKey(), body: '{"item":"widget"}' })
    expect(runs).toBe(1)
    expect(answer.status).toBe(409)
    for (const name of ['content-encoding', 'location', 'content-language']) {
      expect(answer.headers.get(name)).toBeNull()
    }
    expect(Object.keys(JSON.parse(answer.text) as object)).toEqual(['error'])
  })

  it('sends a body larger than maxStoredBodyBytes whole, without storing it', async () => {
    let runs = 0
    const url = await start(
      (app, idempotency) => {
        app.post('/big', idempotency, (_req, res) => {
          runs++
          res.type('text/plain')
          for (let i = 0; i < 10; i++) res.write('0123456789')
          res.end('!')
        })
      },
      { maxStoredBodyBytes: 25 },
    )
    const key = newKey()
    for (let i = 0; i < 2; i++) {
      const answer = await send(`${url}/big`, { key })
      expect(answer.text).toBe(`${'0123456789'.repeat(10)}!`)
      expect(answer.headers.get('idempotent-replayed')).toBeNull()
    }
    expect(runs).toBe(2)
  })

  it("releases the key when Express's own final handler answers the error", async () => {
    let runs = 0
    const url = await start((app, idempotency) => {
      app.post('/fail', idempotency, () => {
        runs++
        throw new Error('broke')
      })
    })
    const key = newKey()
    expect((await send(`${url}/fail`, { key })).status).toBe(500)
    expect((await send(`${url}/fail`, { key })).status).toBe(500)
    expect(runs).toBe(2)
    // And errors of the adapter reach it with their status and headers.
    expect((await send(`${url}/fail`, { key: 'nope' })).status).toBe(400)
    expect(runs).toBe(2)
  })

  it('answers 415 for a keyed body of a content type no parser reads, and runs nothing', async () => {
    let runs = 0
    const url = await start((app, idempotency) => {
      app.post('/orders', idempotency, (_req, res) => {
        runs++
        res.status(201).end()
      })
    })
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
      const answer = await send(`${url}/orders`, {
        key: newKey(),
        body: 'a=1',
        headers: { 'content-type': type },
      })
      expect(`${type}: ${String(answer.status)}`).toBe(`${type}: 415`)
    }
    // No content type at all: no parser reads it either.
    const untyped = await sendUntyped(`${url}/orders`, newKey(), 'a=1')
    expect(untyped).toBe(415)
    expect(runs).toBe(0)
    // Without a key the layer has nothing to fingerprint: the app's own handling applies.
    expect(
      (await send(`${url}/orders`, { body: 'a=1', headers: { 'content-type': 'text/plain' } }))
        .status,
    ).toBe(201)
    expect(runs).toBe(1)
  })

  it('refuses a body a parser read without keeping it, rather than fingerprint without it', async () => {
    let runs = 0
    const url = await start(
      (app, idempotency) => {
        app.post('/orders', express.json(), idempotency, (_req, res) => {
          runs++
          res.status(201).end()
        })
      },
      { parse: false },
    )
    expect((await send(`${url}/orders`, { key: newKey(), body: '{}' })).status).toBe(500)
    expect(runs).toBe(0)
    expect((await send(`${url}/orders`, { key: newKey() })).status).toBe(201)
    expect(runs).toBe(1)
  })

  it('serialises in complete() as res.json would, and takes only its store’s transaction', async () => {
    const sqlite = openTemporarySqlite()
    const idempotency = expressIdempotency({
      engine: createIdempotencyEngine({ store: sqlite.store }),
      scope: () => 'tenant',
    })
    const res = new ServerResponse(new IncomingMessage(new Socket()))
    // An unkeyed request: complete() only serialises, as res.json would.
    const bytes = await sqlite.connection.transaction((tx) =>
      idempotency.complete(res, { id: 1 }, tx),
    )
    expect(bytes.toString()).toBe('{"id":1}')
    expect(res.getHeader('content-type')).toBe('application/json; charset=utf-8')
    const postgresTx = { afterCommit: () => undefined } as unknown as PostgresTransaction
    // Checked by the compiler (tsc -p tsconfig.test.json), never called.
    compileOnly(() =>
      // @ts-expect-error a PostgreSQL transaction is not the SQLite store's
      idempotency.complete(res, 'body', postgresTx),
    )
    await sqlite.close()
  })
})
