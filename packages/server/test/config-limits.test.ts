/**
 * Settings that cannot work are refused at start: an idempotency record must outlive every claim
 * on it, so its TTL must exceed both the lease and the request deadline.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../src/config.js'
import { MAIN_JS, runNode, tempDatabase } from './support/server.js'

const refusal = (env: Record<string, string>): string | undefined => {
  try {
    loadConfig(env)
    return undefined
  } catch (error) {
    if (error instanceof ConfigError) return error.message
    throw error
  }
}

describe('the idempotency TTL', () => {
  it.each([
    [
      '1 s against the default 10 s deadline',
      { IDEMPOTENCY_TTL_SECONDS: '1', IDEMPOTENCY_LEASE_MS: '100' },
    ],
    ['equal to the deadline', { IDEMPOTENCY_TTL_SECONDS: '10', IDEMPOTENCY_LEASE_MS: '100' }],
    [
      'shorter than a longer deadline',
      { IDEMPOTENCY_TTL_SECONDS: '60', REQUEST_DEADLINE_MS: '120000' },
    ],
    ['equal to the default 30 s lease', { IDEMPOTENCY_TTL_SECONDS: '30' }],
    [
      'shorter than a longer lease',
      { IDEMPOTENCY_TTL_SECONDS: '600', IDEMPOTENCY_LEASE_MS: '900000' },
    ],
  ])('is refused when %s, naming the three settings', (_name, env) => {
    const message = refusal(env)
    expect(message).toBeDefined()
    for (const name of ['IDEMPOTENCY_TTL_SECONDS', 'IDEMPOTENCY_LEASE_MS', 'REQUEST_DEADLINE_MS'])
      expect(message).toContain(name)
  })

  it.each([
    ['the defaults', {}],
    ['just past the lease and the deadline', { IDEMPOTENCY_TTL_SECONDS: '31' }],
    [
      '1 s with a shorter lease and deadline',
      { IDEMPOTENCY_TTL_SECONDS: '1', IDEMPOTENCY_LEASE_MS: '100', REQUEST_DEADLINE_MS: '900' },
    ],
  ])('is accepted with %s', (_name, env) => {
    expect(refusal(env)).toBeUndefined()
  })

  it('stops the real server at start with exit code 2 and one line naming the settings', async () => {
    const database = tempDatabase()
    try {
      const result = await runNode(MAIN_JS, [], {
        DATABASE_URL: database.url,
        PORT: '0',
        LOG_LEVEL: 'silent',
        IDEMPOTENCY_TTL_SECONDS: '1',
        IDEMPOTENCY_LEASE_MS: '100',
      })
      expect(result.code).toBe(2)
      expect(result.stdout).toBe('')
      const lines = result.stderr.split('\n').filter((line) => line !== '')
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^ticksupply: IDEMPOTENCY_TTL_SECONDS .*REQUEST_DEADLINE_MS/)
    } finally {
      database.cleanup()
    }
  })
})

describe('an empty setting', () => {
  it('means its default, DATABASE_URL too, for the exports settings that read it as well', () => {
    const config = loadConfig({ DATABASE_URL: '', ARTIFACTS_DIR: '' })
    expect(config.database).toEqual({ kind: 'sqlite', filename: './data/ticksupply.db' })
    expect(config.exports.artifactsDir).toBe(join('data', 'artifacts'))
  })
})

describe('HOST', () => {
  it.each([
    ['unset', {}],
    ['empty', { HOST: '' }],
  ])('is loopback when %s: an empty host would be every interface', (_name, env) => {
    expect(loadConfig(env).host).toBe('127.0.0.1')
  })

  it.each([
    '127.0.0.1',
    '0.0.0.0',
    '::',
    '::1',
    'localhost',
    'LOCALHOST.',
    'api.internal',
    'host-1.example.com',
  ])('takes %s', (host) => {
    expect(loadConfig({ HOST: host }).host).toBe(host)
  })

  it.each([
    ' ',
    '127.0.0.1:8080',
    'http://localhost',
    'a b',
    '-bad',
    'bad_.host',
    '[::1]',
    'x'.repeat(254),
  ])('refuses %j, naming HOST', (host) => {
    expect(refusal({ HOST: host })).toMatch(/^HOST must be/)
  })
})

describe('a server that cannot start', () => {
  /** Runs the real server with `env`; it must stop with 2 and one line on stderr. */
  async function refusedStart(env: Record<string, string>): Promise<string> {
    const result = await runNode(MAIN_JS, [], { PORT: '0', LOG_LEVEL: 'silent', ...env })
    expect(result.code).toBe(2)
    expect(result.stdout).toBe('')
    const lines = result.stderr.split('\n').filter((line) => line !== '')
    expect(lines).toHaveLength(1)
    return lines[0] ?? ''
  }

  it('says the port is in use, naming PORT', async () => {
    const database = tempDatabase()
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = blocker.address() as AddressInfo
      const line = await refusedStart({ DATABASE_URL: database.url, PORT: String(port) })
      expect(line).toBe(
        `ticksupply: cannot listen on 127.0.0.1:${String(port)}: PORT ${String(port)} is in use by another process`,
      )
    } finally {
      blocker.close()
      database.cleanup()
    }
  })

  it('says a host that does not resolve, naming HOST', async () => {
    const database = tempDatabase()
    try {
      const line = await refusedStart({ DATABASE_URL: database.url, HOST: 'no-such-host.invalid' })
      expect(line).toMatch(
        /^ticksupply: cannot listen on no-such-host\.invalid:0(: HOST | \(HOST, PORT\): )/,
      )
    } finally {
      database.cleanup()
    }
  })

  it.each([
    [
      'a file that is not a SQLite database',
      (dir: string) => {
        const path = join(dir, 'not-a-database.db')
        writeFileSync(path, 'hello, this is text and not a database file at all.'.repeat(100))
        return path
      },
    ],
    [
      'a directory',
      (dir: string) => {
        const path = join(dir, 'a-directory')
        mkdirSync(path)
        return path
      },
    ],
    [
      'a path under a file',
      (dir: string) => {
        const path = join(dir, 'plain-file')
        writeFileSync(path, '')
        return join(path, 'ticksupply.db')
      },
    ],
  ])('says the database cannot be opened (%s), naming DATABASE_URL', async (_name, pathIn) => {
    const dir = mkdtempSync(join(tmpdir(), 'ticksupply-start-'))
    try {
      const path = pathIn(dir)
      const line = await refusedStart({ DATABASE_URL: `sqlite:${path}` })
      expect(
        line.startsWith(`ticksupply: cannot open the database of DATABASE_URL (${path}): `),
      ).toBe(true)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
