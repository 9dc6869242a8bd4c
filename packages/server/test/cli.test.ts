/** The built entry points: the API key CLI and the server's refusal of bad configuration. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Subscription, TestServer } from './support/server.js'
import {
  KEYS_CLI_JS,
  MAIN_JS,
  listSubscriptions,
  runNode,
  send,
  spawnServer,
  startServer,
  tempDatabase,
} from './support/server.js'

vi.setConfig({ testTimeout: 60_000, hookTimeout: 30_000 })

const scratch: string[] = []
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true })
})

/** A file of bytes that are no SQLite database. */
function notADatabase(): string {
  const dir = mkdtempSync(join(tmpdir(), 'keys-cli-'))
  scratch.push(dir)
  const file = join(dir, 'garbage.db')
  writeFileSync(file, Buffer.alloc(8192, 0x5a))
  return file
}

describe('keys-cli', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startServer()
  })
  afterAll(async () => {
    await server.close()
  })

  const keys = (...args: string[]) =>
    runNode(KEYS_CLI_JS, args, { DATABASE_URL: server.databaseUrl })

  it('creates an API key (tsk_...) that authenticates against a server on the same database', async () => {
    const created = await keys('create', '--account', 'initech')
    expect(created.code, created.stderr).toBe(0)
    const apiKey = created.stdout.trim().split('\n')[0] ?? ''
    expect(apiKey).toMatch(/^tsk_[A-Za-z0-9_-]{16,}$/)

    expect((await send(`${server.url}/v1/exchanges`, { apiKey })).status).toBe(200)
    const subscribed = await send(`${server.url}/v1/subscriptions`, {
      apiKey,
      body: { datastream_id: 1 },
    })
    expect(subscribed.status).toBe(201)
    const id = subscribed.json<Subscription>().id

    // A second key of the same account sees the same resources; another account does not.
    const second = await keys('create', '--account', 'initech')
    expect(second.code).toBe(0)
    const secondKey = second.stdout.trim().split('\n')[0] ?? ''
    expect(secondKey).not.toBe(apiKey)
    expect((await listSubscriptions(server.url, secondKey)).map((sub) => sub.id)).toEqual([id])
    expect((await send(`${server.url}/v1/subscriptions/${id}`)).status).toBe(404)
  })

  it.each([
    ['no command', []],
    ['no --account', ['create']],
    ['an invalid account name', ['create', '--account', 'not a name!']],
    ['an unknown command', ['frobnicate', '--account', 'acme']],
    ['an unknown option', ['create', '--account', 'acme', '--bogus']],
    ['an unknown access status', ['access', '--account', 'acme', '--status', 'BOGUS']],
    ['no access status', ['access', '--account', 'acme']],
    ['an argument too many', ['create', '--account', 'acme', 'extra']],
    ['an option given twice', ['create', '--account', 'acme', '--account', 'other']],
  ])('exits 2 with the usage for %s', async (_name, args) => {
    const result = await keys(...args)
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('Usage:')
    expect(result.stdout).toBe('')
  })

  it('prints the usage for --help, and exits 0', async () => {
    const result = await keys('--help')
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('Usage:')
  })

  it.each([
    ['a file that is not a database', () => `sqlite:${notADatabase()}`, 'file is not a database'],
    [
      'a PostgreSQL that refuses connections',
      () => 'postgres://u:pw@127.0.0.1:1/db',
      'ECONNREFUSED',
    ],
  ])('exits 2 with one line for %s, no stack trace and no password', async (_name, url, says) => {
    const result = await runNode(KEYS_CLI_JS, ['create', '--account', 'x'], { DATABASE_URL: url() })
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('cannot open the database of DATABASE_URL')
    expect(result.stderr).toContain(says)
    expect(result.stderr).not.toMatch(/\n\s+at /)
    expect(result.stderr).not.toContain('pw')
    expect(result.stdout).toBe('')
  })

  it('exits 2 naming the account when it does not exist', async () => {
    const result = await keys('access', '--account', 'nobody', '--status', 'ACTIVE')
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('No account named "nobody"')
  })

  it('exits 2 with a clear message for a DATABASE_URL it cannot use', async () => {
    const result = await runNode(KEYS_CLI_JS, ['create', '--account', 'x'], {
      DATABASE_URL: 'mysql://x',
    })
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('DATABASE_URL')
  })
})

describe('the server process', () => {
  const database = tempDatabase()
  afterAll(() => {
    database.cleanup()
  })

  const start = (env: Record<string, string>) =>
    runNode(MAIN_JS, [], { DATABASE_URL: database.url, LOG_LEVEL: 'silent', PORT: '0', ...env })

  it.each([
    ['PORT=abc', { PORT: 'abc' }, 'PORT'],
    ['PORT=70000', { PORT: '70000' }, 'PORT'],
    ['DATABASE_URL=mysql://x', { DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    ['DATABASE_URL=sqlite:', { DATABASE_URL: 'sqlite:' }, 'DATABASE_URL'],
    [
      'a TTL shorter than the lease',
      { IDEMPOTENCY_TTL_SECONDS: '1', IDEMPOTENCY_LEASE_MS: '5000' },
      'IDEMPOTENCY_TTL_SECONDS',
    ],
    ['LOG_LEVEL=loud', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    ['a malformed API_KEYS', { API_KEYS: 'no-colon-here' }, 'API_KEYS'],
    ['an API key too short', { API_KEYS: 'acme:short' }, 'API_KEYS'],
    [
      'TICKSUPPLY_TEST_HANDLER_DELAY_MS with NODE_ENV=production',
      { NODE_ENV: 'production', TICKSUPPLY_TEST_HANDLER_DELAY_MS: '100' },
      'NODE_ENV=production',
    ],
    [
      'TICKSUPPLY_TEST_EXIT_AFTER_COMMIT with NODE_ENV=production',
      { NODE_ENV: 'production', TICKSUPPLY_TEST_EXIT_AFTER_COMMIT: '1' },
      'NODE_ENV=production',
    ],
  ])(
    'refuses to start with %s: non-zero exit and a clear message on stderr',
    async (_name, env, mentions) => {
      const result = await start(env)
      expect(result.code).not.toBe(0)
      expect(result.code).not.toBeNull()
      expect(result.stderr).toContain(mentions)
      expect(result.stderr).not.toMatch(/\n\s+at /)
      expect(result.stdout).not.toContain('listening')
    },
  )

  it('starts, announces its URL and the key command for its database, serves, and exits 0 on SIGTERM', async () => {
    const server = await spawnServer({ DATABASE_URL: database.url })
    expect(server.stdout()).toContain(`Ticksupply API listening on ${server.url}`)
    // Not the default file: the command says which database the key goes into.
    expect(server.stdout()).toContain(
      `Create an API key:  DATABASE_URL=${database.url} npm run keys -- create --account <name>`,
    )
    expect((await send(`${server.url}/v1/exchanges`)).status).toBe(200)
    server.kill('SIGTERM')
    expect(await server.exited).toEqual({ code: 0, signal: null })
  })

  it('starts with fault injection outside production', async () => {
    const server = await spawnServer({
      DATABASE_URL: database.url,
      TICKSUPPLY_TEST_HANDLER_DELAY_MS: '1',
    })
    expect((await send(`${server.url}/v1/exchanges`)).status).toBe(200)
    server.kill('SIGTERM')
    await server.exited
  })
})
