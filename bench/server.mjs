// One benchmark server: the same Fastify handler, with or without the idempotency plugin.
// Reports its own CPU time over IPC, so that the load generator's CPU is not counted.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import { createIdempotencyEngine } from '@ticksupply/idempotency'
import { fastifyIdempotency } from '@ticksupply/idempotency/fastify'
import { createSqliteStore, openSqliteConnection } from '@ticksupply/idempotency/stores/sqlite'

const scenario = process.argv[2] ?? 'bare'
const app = Fastify({ logger: false })

if (scenario !== 'bare') {
  const dir = mkdtempSync(join(tmpdir(), 'ticksupply-bench-'))
  const connection = openSqliteConnection(join(dir, 'bench.db'))
  const engine = createIdempotencyEngine({ store: createSqliteStore({ connection }) })
  // The recommended set-up: the JSON parser keeps the raw bytes, and the adapter reads them
  // (readRawBody) instead of teeing the body stream.
  app.decorateRequest('rawBody', undefined)
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    request.rawBody = body
    done(null, body.length === 0 ? undefined : JSON.parse(body.toString('utf8')))
  })
  await app.register(fastifyIdempotency, {
    engine,
    scope: () => 'bench-account',
    readRawBody: (request) => request.rawBody,
  })
}

app.post('/orders', async (_request, reply) => reply.code(201).send({ id: randomUUID() }))
app.get('/orders/1', async () => ({ id: '6f1c1a52-3c0e-4d55-9a39-8d1f3c8e2f10', item: 'widget' }))

const address = await app.listen({ host: '127.0.0.1', port: 0 })
let baseline = process.cpuUsage()
process.on('message', (message) => {
  if (message === 'reset') {
    baseline = process.cpuUsage()
    process.send?.({ reset: true })
  }
  if (message === 'cpu') {
    const used = process.cpuUsage(baseline)
    process.send?.({ cpuMicros: used.user + used.system })
  }
})
process.on('SIGINT', () => process.exit(0))
process.send?.({ address })
