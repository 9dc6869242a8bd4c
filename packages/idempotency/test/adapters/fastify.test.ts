/** What only the Fastify adapter has; the contract itself is adapter-contract.test.ts. */
import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import Fastify from 'fastify'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import type { IdempotencyHttpError } from '@ticksupply/idempotency'
import type { SqliteStore } from '@ticksupply/idempotency/stores/sqlite'
import { createIdempotencyEngine, isIdempotencyHttpError } from '@ticksupply/idempotency'
import { completeReply, fastifyIdempotency } from '@ticksupply/idempotency/fastify'
import { newKey, send, sendAndAbandon } from '../support/http.js'
import { openTemporarySqlite } from '../support/sqlite.js'

const order = '{"item":"widget"}'
let cleanup: (() => Promise<void>) | undefined

afterEach(async () => {
  await cleanup?.()
  cleanup = undefined
})

/** A bare Fastify app behind the adapter: no error handler unless `routes` sets one. */
async function bareApp(
  routes: (app: FastifyInstance, store: SqliteStore) => void,
  options: { readRawBody?: () => Uint8Array | undefined } = {},
): Promise<string> {
  const sqlite = openTemporarySqlite()
  const app = Fastify({ forceCloseConnections: true })
  cleanup = async () => {
    await app.close()
    await sqlite.close()
  }
  await app.register(fastifyIdempotency, {
    engine: createIdempotencyEngine({ store: sqlite.store }),
    scope: () => 'tenant',
    ...options,
  })
  routes(app, sqlite.store)
  return app.listen({ host: '127.0.0.1', port: 0 })
}

describe('the Fastify adapter', () => {
  it('answers its errors itself, rendered, where the app set no error handler', async () => {
    let runs = 0
    const url = await bareApp((app) => {
      app.post('/orders', () => {
        runs++
        return Promise.resolve({ ok: true })
      })
    })
    const bad = await send(`${url}/orders`, { key: 'nope' })
    expect(bad.status).toBe(400)
    expect(JSON.parse(bad.text)).toEqual({
      error: { code: 'invalid_argument', message: 'Invalid idempotency key format' },
    })
    expect(runs).toBe(0)
  })

  it("hands its errors to the app's error handler, with status, code, headers and cause", async () => {
    const seen: unknown[] = []
    const url = await bareApp((app) => {
      app.setErrorHandler((error, _request, reply) => {
        seen.push(error)
        return reply.code(418).send('handled by the app')
      })
      app.post('/orders', () => Promise.resolve({ ok: true }))
    })
    const key = newKey()
    await send(`${url}/orders`, { key, body: order })
    const answer = await send(`${url}/orders`, { key, body: '{"item":"other"}' })
    expect(answer.status).toBe(418)
    expect(answer.text).toBe('handled by the app')
    expect(seen).toHaveLength(1)
    const [error] = seen
    expect(isIdempotencyHttpError(error)).toBe(true)
    expect(error).toMatchObject({
      statusCode: 409,
      status: 409,
      code: 'fingerprint_mismatch',
      headers: {},
      expose: true,
    })
    expect((error as IdempotencyHttpError).cause.code).toBe('fingerprint_mismatch')
    expect(JSON.parse((error as IdempotencyHttpError).response.body)).toMatchObject({
      error: { code: 'already_exists' },
    })
  })

  // Fastify runs an app's error handler once per reply: an error raised while the app's own
  // rendering of an error is being sent used to fall through to Fastify's format (or, with
  // error schemas, a 500 that failed to serialize).
  it('answers in its rendering when the completion fails while the app answers an error', async () => {
    let rendered = 0
    let runs = 0
    const url = await bareApp((app, store) => {
      app.setErrorHandler((error, _request, reply) => {
        rendered++
        if (isIdempotencyHttpError(error)) {
          return reply.code(error.status).headers(error.headers).send(error.response.body)
        }
        // An answer below 500: one the key would store, so its completion must run.
        return reply
          .code(422)
          .type('application/json')
          .send('{"error":{"code":"invalid_argument","message":"The order cannot be placed"}}')
      })
      app.post('/orders', () => {
        runs++
        // The store goes away mid-operation (its claims with it), then the operation fails.
        store.close()
        throw new Error('the database went away')
      })
    })
    const answer = await send(`${url}/orders`, { key: newKey(), body: order })
    expect(runs).toBe(1)
    expect(rendered).toBe(1)
    const body = JSON.parse(answer.text) as Record<string, unknown>
    expect(Object.keys(body), answer.text).toEqual(['error'])
    // The key is no longer this request's (the store dropped its claim): the lost claim's answer.
    expect(answer.status).toBe(409)
    expect(body).toEqual({
      error: {
        code: 'already_exists',
        message: 'Request is still in progress. Please retry later.',
      },
    })
  })

  it('refuses a body the parser did not keep rather than fingerprint without it', async () => {
    let runs = 0
    const url = await bareApp(
      (app) => {
        app.post('/orders', async (_request, reply) => {
          runs++
          return reply.code(201).send({ ok: true })
        })
      },
      // A parser that forgot to keep the bytes.
      { readRawBody: () => undefined },
    )
    expect((await send(`${url}/orders`, { key: newKey(), body: order })).status).toBe(500)
    expect(runs).toBe(0)
    // Without a body there is nothing to leave out: the request runs.
    expect((await send(`${url}/orders`, { key: newKey() })).status).toBe(201)
    expect(runs).toBe(1)
  })

  it('fingerprints every byte of a body read in chunks, however the parser reads it', async () => {
    // Bodies past the 64 KiB the fingerprint keeps are hashed as they stream, and the parser
    // reads them with data events (Fastify's own, and a callback parser as Fastify's docs write
    // one) or with an async iterator (a custom one).
    const runs = { json: 0, text: 0, chunks: 0 }
    const url = await bareApp((app) => {
      app.addContentTypeParser('text/plain', async (_request: unknown, payload: Readable) => {
        let text = ''
        for await (const chunk of payload) text += String(chunk)
        return text
      })
      app.addContentTypeParser(
        'application/x-chunks',
        (_request: unknown, payload: Readable, done: (error: null, body: string) => void) => {
          let text = ''
          payload.on('data', (chunk: Buffer) => (text += chunk.toString()))
          payload.on('end', () => {
            done(null, text)
          })
        },
      )
      app.post('/chunks', { bodyLimit: 4_000_000 }, async (request, reply) => {
        runs.chunks++
        return reply.code(201).send({ length: (request.body as string).length })
      })
      app.post('/json', { bodyLimit: 4_000_000 }, async (request, reply) => {
        runs.json++
        return reply.code(201).send({ length: JSON.stringify(request.body).length })
      })
      app.post('/text', { bodyLimit: 4_000_000 }, async (request, reply) => {
        runs.text++
        return reply.code(201).send({ length: (request.body as string).length })
      })
    })
    for (const [path, type, size] of [
      ['json', 'application/json', 300_000],
      ['json', 'application/json', 30],
      ['text', 'text/plain', 300_000],
      ['chunks', 'application/x-chunks', 300_000],
      ['chunks', 'application/x-chunks', 30],
    ] as const) {
      const body =
        type === 'application/json' ? JSON.stringify({ a: 'x'.repeat(size) }) : 'x'.repeat(size)
      // The same length, its last 'x' (near the very end) changed.
      const at = body.lastIndexOf('x')
      const changed = `${body.slice(0, at)}y${body.slice(at + 1)}`
      const key = newKey()
      const headers = { 'content-type': type }
      const first = await send(`${url}/${path}`, { key, body, headers })
      const again = await send(`${url}/${path}`, { key, body, headers })
      const different = await send(`${url}/${path}`, { key, body: changed, headers })
      expect([first.status, again.status, different.status]).toEqual([201, 201, 409])
      expect(again.headers.get('idempotent-replayed')).toBe('true')
      expect(again.text).toBe(first.text)
    }
    expect(runs).toEqual({ json: 2, text: 1, chunks: 2 })
  })

  it('stores and replays answers with no payload (send(), a redirect, a 304), and the app goes on', async () => {
    const runs: Record<string, number> = {}
    const url = await bareApp((app) => {
      const counted =
        (name: string, answer: (reply: FastifyReply) => FastifyReply) =>
        async (_request: unknown, reply: FastifyReply) => {
          runs[name] = (runs[name] ?? 0) + 1
          return answer(reply)
        }
      app.post(
        '/created',
        counted('created', (reply) => reply.code(201).send()),
      )
      app.post(
        '/moved',
        counted('moved', (reply) => reply.redirect('/elsewhere', 303)),
      )
      app.post(
        '/unchanged',
        counted('unchanged', (reply) => reply.code(304).send()),
      )
      app.post(
        '/null',
        counted('null', (reply) => reply.type('text/plain').send(null)),
      )
      // Fastify serialises a null for JSON.
      app.post(
        '/json-null',
        counted('json-null', (reply) => reply.code(201).send(null)),
      )
    })
    for (const [path, status, text] of [
      ['created', 201, ''],
      ['moved', 303, ''],
      ['unchanged', 304, ''],
      ['null', 200, ''],
      ['json-null', 201, 'null'],
    ] as const) {
      const key = newKey()
      const first = await send(`${url}/${path}`, { key })
      const again = await send(`${url}/${path}`, { key })
      expect([first.status, again.status]).toEqual([status, status])
      expect([first.text, again.text]).toEqual([text, text])
      expect(again.headers.get('idempotent-replayed')).toBe('true')
      for (const name of ['location', 'content-type']) {
        expect(`${name}: ${String(again.headers.get(name))}`).toBe(
          `${name}: ${String(first.headers.get(name))}`,
        )
      }
    }
    expect(runs).toEqual({ created: 1, moved: 1, unchanged: 1, null: 1, 'json-null': 1 })
    // The process is still serving.
    expect((await send(`${url}/created`, {})).status).toBe(201)
  })

  it('refuses a keyed body the handler would read itself rather than fingerprint part of it', async () => {
    let runs = 0
    const url = await bareApp((app) => {
      // A parser that hands the stream on: the body is read after the claim, if ever.
      app.addContentTypeParser('application/octet-stream', (_request, payload, done) => {
        done(null, payload)
      })
      app.post('/upload', async (request, reply) => {
        runs++
        await (request.body as Readable).toArray()
        return reply.code(201).send({ ok: true })
      })
    })
    const headers = { 'content-type': 'application/octet-stream' }
    const keyed = await send(`${url}/upload`, { key: newKey(), body: 'a'.repeat(10), headers })
    expect(keyed.status).toBe(500)
    expect(runs).toBe(0)
    // Unkeyed, it is the app's route as it was.
    expect((await send(`${url}/upload`, { body: 'a'.repeat(10), headers })).status).toBe(201)
    expect(runs).toBe(1)
  })

  it('gives the key back for a streamed reply, whose bytes it cannot store', async () => {
    let runs = 0
    const url = await bareApp((app) => {
      app.post('/stream', async (_request, reply) => {
        runs++
        return reply.type('text/plain').send(Readable.from(['one ', 'two']))
      })
    })
    const key = newKey()
    for (let i = 0; i < 2; i++) {
      const answer = await send(`${url}/stream`, { key })
      expect(answer.text).toBe('one two')
      expect(answer.headers.get('idempotent-replayed')).toBeNull()
    }
    expect(runs).toBe(2)
  })

  it('gives the key back when the handler destroys the response without answering', async () => {
    let runs = 0
    const url = await bareApp((app) => {
      app.post('/destroyed', (_request, reply) => {
        runs++
        reply.raw.destroy()
      })
    })
    const key = newKey()
    const attempt = () =>
      send(`${url}/destroyed`, { key }).then(
        (answer) => answer.status,
        () => 'connection closed',
      )
    expect(await attempt()).toBe('connection closed')
    expect(await attempt()).toBe('connection closed')
    expect(runs).toBe(2)
  })

  it('keeps the claim of a handler still running when its client disconnects, and stores its answer', async () => {
    let runs = 0
    let finished: () => void = () => undefined
    const done = new Promise<void>((resolve) => {
      finished = resolve
    })
    const url = await bareApp((app) => {
      app.post('/slow', async (_request, reply) => {
        runs++
        await new Promise((resolve) => setTimeout(resolve, 300))
        setImmediate(finished)
        return reply.code(201).send({ run: runs })
      })
    })
    const key = newKey()
    await sendAndAbandon(`${url}/slow`, { key, body: '{}', afterMs: 50 })
    await done
    const retry = await send(`${url}/slow`, { key, body: '{}' })
    expect(retry.status).toBe(201)
    expect(retry.headers.get('idempotent-replayed')).toBe('true')
    expect(runs).toBe(1)
  })

  it('stores the answer a hijacked reply writes to reply.raw, and replays it', async () => {
    let runs = 0
    const url = await bareApp((app) => {
      app.post('/raw', async (_request, reply) => {
        runs++
        reply.hijack()
        await new Promise((resolve) => setTimeout(resolve, 200))
        reply.raw.writeHead(201, { 'content-type': 'text/plain', location: '/raw/1' })
        reply.raw.write('written ')
        reply.raw.end(`raw ${String(runs)}`)
      })
    })
    const key = newKey()
    // A duplicate sent while the original runs waits for it, then gets its replay.
    const [first, duplicate] = await Promise.all([
      send(`${url}/raw`, { key }),
      new Promise((resolve) => setTimeout(resolve, 50)).then(() => send(`${url}/raw`, { key })),
    ])
    const later = await send(`${url}/raw`, { key })
    expect(first.status).toBe(201)
    expect(first.text).toBe('written raw 1')
    for (const replay of [duplicate, later]) {
      expect(replay.status).toBe(201)
      expect(replay.text).toBe('written raw 1')
      expect(replay.headers.get('location')).toBe('/raw/1')
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
    }
    expect(runs).toBe(1)
  })

  it('gives the key back when a handler throws after reply.hijack(), sync or async', async () => {
    const runs = { sync: 0, async: 0 }
    const url = await bareApp((app) => {
      app.post('/sync', (_request, reply) => {
        reply.hijack()
        if (++runs.sync === 1) throw new Error('failed after hijack')
        reply.raw.writeHead(201, { 'content-type': 'text/plain' })
        reply.raw.end('made')
      })
      app.post('/async', async (_request, reply) => {
        await new Promise((resolve) => setTimeout(resolve, 10))
        reply.hijack()
        await new Promise((resolve) => setTimeout(resolve, 10))
        if (++runs.async === 1) throw new Error('failed after hijack')
        reply.raw.writeHead(201, { 'content-type': 'text/plain' })
        reply.raw.end('made')
      })
    })
    for (const path of ['sync', 'async'] as const) {
      const key = newKey()
      // A hijacked reply that threw is never answered: the client gives up.
      await sendAndAbandon(`${url}/${path}`, { key, body: order, afterMs: 200 })
      const retry = await send(`${url}/${path}`, { key, body: order })
      expect([retry.status, retry.text]).toEqual([201, 'made'])
      expect(retry.headers.get('idempotent-replayed')).toBeNull()
      const replay = await send(`${url}/${path}`, { key, body: order })
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
    }
    expect(runs).toEqual({ sync: 2, async: 2 })
  })

  it('stores with completeReply what reply.send would send: type, charset and bytes', async () => {
    const sqlite = openTemporarySqlite()
    const url = await bareApp((app) => {
      app.post('/text', async (_request, reply) =>
        reply.send(await sqlite.connection.transaction((tx) => completeReply(reply, 'plain', tx))),
      )
      app.post('/json-type', async (_request, reply) => {
        reply.type('application/vnd.order+json')
        return reply.send(
          await sqlite.connection.transaction((tx) => completeReply(reply, { a: 1 }, tx)),
        )
      })
    })
    const previous = cleanup
    cleanup = async () => {
      await previous?.()
      await sqlite.close()
    }
    for (const [path, type] of [
      ['/text', 'text/plain; charset=utf-8'],
      ['/json-type', 'application/vnd.order+json; charset=utf-8'],
    ] as const) {
      const key = newKey()
      const original = await send(`${url}${path}`, { key })
      const replay = await send(`${url}${path}`, { key })
      expect(original.headers.get('content-type')).toBe(type)
      expect(replay.headers.get('content-type')).toBe(type)
      expect(replay.body.equals(original.body)).toBe(true)
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
    }
  })

  it('refuses a route whose config.idempotency is not a boolean or route settings', async () => {
    const sqlite = openTemporarySqlite()
    const app = Fastify()
    cleanup = async () => {
      await app.close()
      await sqlite.close()
    }
    await app.register(fastifyIdempotency, {
      engine: createIdempotencyEngine({ store: sqlite.store }),
      scope: () => 'tenant',
    })
    expect(() =>
      app.post(
        '/orders',
        { config: { idempotency: { requried: true } as never } },
        () => 'never registered',
      ),
    ).toThrow(TypeError)
  })
})

describe("the Fastify adapter behind the app's own serialisation hooks", () => {
  it('stores the answer as the hooks sent it, and replays those bytes unchanged', async () => {
    const runs: Record<string, number> = {}
    const count = (name: string) => (runs[name] = (runs[name] ?? 0) + 1)
    const url = await bareApp((app) => {
      // Fastify's own idiom: an onSend hook that edits the serialised string.
      app.addHook('onSend', (request, _reply, payload, done) => {
        done(
          null,
          request.url === '/redacted' && typeof payload === 'string'
            ? payload.replace('secret', '***')
            : payload,
        )
      })
      app.post('/redacted', async (_request, reply) => {
        count('redacted')
        return reply.send({ v: 'secret' })
      })
      app.post(
        '/enveloped',
        {
          preSerialization: (_request, _reply, payload, done) => {
            done(null, { data: payload, ok: true })
          },
        },
        async (_request, reply) => {
          count('enveloped')
          return reply.code(201).send({ id: 7 })
        },
      )
      app.post('/changed-after-send', async (_request, reply) => {
        count('changed')
        const order = { id: 1, status: 'created' }
        void reply.code(201).send(order)
        // The handler goes on with its object once the answer is on its way.
        order.status = 'processing'
        return reply
      })
      app.post('/untyped', async (_request, reply) => {
        count('untyped')
        return reply.serializer((value) => `custom:${JSON.stringify(value)}`).send({ c: 1 })
      })
    })
    for (const [path, text] of [
      ['redacted', '{"v":"***"}'],
      ['enveloped', '{"data":{"id":7},"ok":true}'],
      ['changed-after-send', '{"id":1,"status":"created"}'],
      ['untyped', 'custom:{"c":1}'],
    ] as const) {
      const key = newKey()
      const first = await send(`${url}/${path}`, { key, body: order })
      const again = await send(`${url}/${path}`, { key, body: order })
      expect(`${path}: ${first.text} / ${again.text}`).toBe(`${path}: ${text} / ${text}`)
      expect(again.headers.get('idempotent-replayed')).toBe('true')
      expect(`${path}: ${String(again.headers.get('content-type'))}`).toBe(
        `${path}: ${String(first.headers.get('content-type'))}`,
      )
    }
    expect(runs).toEqual({ redacted: 1, enveloped: 1, changed: 1, untyped: 1 })
  })
})

describe('the Fastify adapter behind an onSend hook that encodes (compression)', () => {
  /** What @fastify/compress does: gzips string and buffer payloads the client accepts gzip for. */
  function addGzipHook(app: FastifyInstance, options: { stream?: boolean } = {}): void {
    app.addHook('onSend', (request, reply, payload, done) => {
      const accepts = /\bgzip\b/.test(request.headers['accept-encoding'] ?? '')
      const encodable = typeof payload === 'string' || Buffer.isBuffer(payload)
      if (!accepts || !encodable || reply.hasHeader('content-encoding')) {
        done(null, payload)
        return
      }
      const zipped = gzipSync(payload)
      reply.header('content-encoding', 'gzip').removeHeader('content-length')
      done(null, options.stream === true ? Readable.from([zipped]) : zipped)
    })
  }
  const gzip = { 'accept-encoding': 'gzip' }

  it.each([
    ['a buffer', false],
    ['a stream', true],
  ])(
    'stores what the handler answered when the hook hands on %s: one run, replays encoded once',
    async (_name, stream) => {
      let runs = 0
      const url = await bareApp((app) => {
        addGzipHook(app, { stream })
        app.post('/orders', (_request, reply) => {
          runs++
          return reply.code(201).send({ order: runs })
        })
      })
      const key = newKey()
      const answers = []
      for (let i = 0; i < 3; i++) {
        answers.push(await send(`${url}/orders`, { key, body: order, headers: gzip }))
      }
      expect(runs).toBe(1)
      for (const [i, answer] of answers.entries()) {
        expect(answer.status).toBe(201)
        // fetch decodes one gzip layer: a replay gzipped twice would read as gzip bytes.
        expect(answer.text).toBe('{"order":1}')
        expect(answer.headers.get('content-encoding')).toBe('gzip')
        expect(answer.headers.get('idempotent-replayed')).toBe(i === 0 ? null : 'true')
      }
      // A retry that takes no gzip gets the same body plainly: the encoding is the hook's.
      const plain = await send(`${url}/orders`, {
        key,
        body: order,
        headers: { 'accept-encoding': 'identity' },
      })
      expect(plain.text).toBe('{"order":1}')
      expect(plain.headers.get('content-encoding')).toBeNull()
      expect(plain.headers.get('idempotent-replayed')).toBe('true')
    },
  )

  it.each([
    ['a buffer', false],
    ['a stream', true],
  ])(
    "keeps a thrown 4xx as Fastify's error handler rendered it, decoded, when the hook hands on %s",
    async (_name, stream) => {
      let runs = 0
      const url = await bareApp((app) => {
        addGzipHook(app, { stream })
        app.post('/orders', () => {
          runs++
          throw Object.assign(new Error(`invalid order: ${'x'.repeat(200)}`), { statusCode: 422 })
        })
      })
      const key = newKey()
      const first = await send(`${url}/orders`, { key, body: order, headers: gzip })
      const again = await send(`${url}/orders`, { key, body: order, headers: gzip })
      const plain = await send(`${url}/orders`, {
        key,
        body: order,
        headers: { 'accept-encoding': 'identity' },
      })
      expect(runs).toBe(1)
      expect(first.status).toBe(422)
      expect(first.headers.get('content-encoding')).toBe('gzip')
      expect(JSON.parse(first.text)).toMatchObject({
        statusCode: 422,
        error: 'Unprocessable Entity',
      })
      for (const replay of [again, plain]) {
        expect(replay.status).toBe(422)
        expect(replay.headers.get('idempotent-replayed')).toBe('true')
        expect(replay.text).toBe(first.text)
      }
      // Encoded for the retry that takes gzip, plain for the one that does not.
      expect(again.headers.get('content-encoding')).toBe('gzip')
      expect(plain.headers.get('content-encoding')).toBeNull()
    },
  )

  it('keeps the first of two sends of a handler, and answers with it', async () => {
    let runs = 0
    const url = await bareApp((app) => {
      app.post('/orders', (_request, reply) => {
        runs++
        void reply.code(201).send({ send: 'first' })
        void reply.send({ send: 'second' })
        return reply
      })
    })
    const key = newKey()
    const first = await send(`${url}/orders`, { key, body: order })
    const replay = await send(`${url}/orders`, { key, body: order })
    expect(runs).toBe(1)
    expect([first.status, replay.status]).toEqual([201, 201])
    expect(first.text).toBe('{"send":"first"}')
    expect(replay.text).toBe('{"send":"first"}')
  })

  it('replays a body the handler encoded itself with its Content-Encoding', async () => {
    let runs = 0
    const zipped = gzipSync('{"order":"pre-compressed"}')
    const url = await bareApp((app) => {
      addGzipHook(app)
      app.post('/orders', (_request, reply) => {
        runs++
        return reply
          .code(201)
          .type('application/json')
          .header('content-encoding', 'gzip')
          .send(zipped)
      })
    })
    const key = newKey()
    const answers = [await send(`${url}/orders`, { key, body: order })]
    answers.push(await send(`${url}/orders`, { key, body: order }))
    answers.push(
      await send(`${url}/orders`, { key, body: order, headers: { 'accept-encoding': 'identity' } }),
    )
    expect(runs).toBe(1)
    for (const answer of answers) {
      expect(answer.headers.get('content-encoding')).toBe('gzip')
      expect(answer.text).toBe('{"order":"pre-compressed"}')
    }
    expect(answers.map((answer) => answer.headers.get('idempotent-replayed'))).toEqual([
      null,
      'true',
      'true',
    ])
  })

  it("answers the store's refusal without the operation's Content-Encoding", async () => {
    let runs = 0
    const url = await bareApp((app, store) => {
      addGzipHook(app)
      app.post('/orders', (_request, reply) => {
        runs++
        // The store goes away mid-operation (its claims with it): the completion is refused.
        store.close()
        return reply.code(201).header('location', '/orders/1').send({ order: 1 })
      })
    })
    const answer = await send(`${url}/orders`, { key: newKey(), body: order, headers: gzip })
    expect(runs).toBe(1)
    expect(answer.status).toBe(409)
    expect(answer.headers.get('content-encoding')).toBeNull()
    expect(answer.headers.get('location')).toBeNull()
    expect(Object.keys(JSON.parse(answer.text) as object)).toEqual(['error'])
  })
})
