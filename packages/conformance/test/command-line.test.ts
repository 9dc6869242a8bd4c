import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EXAMPLE_ADAPTERS } from '../examples/example-apps.js'
import type { RunningExample } from '../examples/example-apps.js'
import { CHECKS } from '../src/index.js'
import { freePort } from '../../../test-support/free-port.js'
import { runCommand, runReport } from './support/run-command.js'

const KEY = 'command-line-key-0001'
let app: RunningExample

beforeAll(async () => {
  const [first] = EXAMPLE_ADAPTERS
  app = await first!.start({ variant: 'correct', apiKeys: { [KEY]: 'acme' } })
})
afterAll(async () => {
  await app.close()
})

describe('usage', () => {
  it.each([
    [[], '--base-url is required'],
    [['--base-url', 'http://127.0.0.1:1'], '--api-key is required'],
    [['--base-url', 'ftp://example', '--api-key', KEY], '--base-url must start with http://'],
    [
      ['--base-url', 'http://127.0.0.1:1', '--api-key', KEY, '--concurrency', '100'],
      '--concurrency must be between 2 and 32',
    ],
    [
      ['--base-url', 'http://127.0.0.1:1', '--api-key', KEY, '--wait-ms', 'soon'],
      '--wait-ms must be a whole number',
    ],
    [
      ['--base-url', 'http://127.0.0.1:1', '--api-key', KEY, '--only', 'keys'],
      '--only names no check: keys',
    ],
    [
      ['--base-url', 'http://127.0.0.1:1', '--api-key', KEY, '--slow-header', 'Idempotency-Key'],
      '--slow-header must be a header name',
    ],
    [
      [
        '--base-url',
        'http://127.0.0.1:1',
        '--api-key',
        KEY,
        '--slow-header',
        'X-Delay',
        '--server-delay-ms',
        '5000',
      ],
      'not both',
    ],
    [
      ['--base-url', 'http://127.0.0.1:1', '--api-key', KEY, '--verbose'],
      "Unknown option '--verbose'",
    ],
  ])('%j is a usage error: exit 2, one line naming it, then the usage', async (argv, message) => {
    const { code, stdout, stderr } = await runCommand(argv)
    expect(code).toBe(2)
    expect(stdout).toBe('')
    expect(stderr.split('\n')[0]).toContain(message)
    expect(stderr).toContain('Usage: ticksupply-conformance')
    expect(stderr).not.toMatch(/\n\s+at /)
  })

  it('--help prints the usage with the exit codes, --version the version', async () => {
    const help = await runCommand(['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('Exit codes: 0 every check that ran passed; 1 a check failed; 2')
    const version = await runCommand(['--version'])
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string
    }
    expect(version).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: '' })
  })

  it('the README lists every check and option the command has', async () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    for (const check of CHECKS) expect(readme).toContain(`| \`${check.id}\``)
    const { stdout } = await runCommand(['--help'])
    for (const option of stdout.matchAll(/^ {2}(--[a-z-]+)/gm)) {
      expect(readme).toContain(`\`${option[1] ?? ''}`)
    }
  })

  it('--list names every check with its clause', async () => {
    const { code, stdout } = await runCommand(['--list'])
    expect(code).toBe(0)
    for (const check of CHECKS) {
      expect(stdout).toContain(check.id)
      expect(stdout).toContain(check.clause)
    }
  })
})

describe('a server that cannot be tested', () => {
  it('is exit 2 and one line when nothing listens at the base URL', async () => {
    const port = await freePort()
    const { code, stderr } = await runCommand([
      '--base-url',
      `http://127.0.0.1:${String(port)}`,
      '--api-key',
      KEY,
    ])
    expect(code).toBe(2)
    expect(stderr).toMatch(
      /^ticksupply-conformance: the server cannot be tested: cannot read the catalog: .*ECONNREFUSED/,
    )
    expect(stderr.trim().split('\n')).toHaveLength(1)
  })

  it('is exit 2, naming the 401, when the API key is refused; --json says so as JSON', async () => {
    const { code, stdout, stderr } = await runCommand([
      '--base-url',
      app.url,
      '--api-key',
      'no-such-key-000000',
      '--json',
    ])
    expect(code).toBe(2)
    expect(stderr).toContain('401')
    const { error } = JSON.parse(stdout) as { error: { code: string; message: string } }
    expect(error.code).toBe('target_unusable')
    expect(error.message).toContain('401')
  })
})

describe('checks that cannot run', () => {
  const waiting = () => [
    '--base-url',
    app.url,
    '--api-key',
    KEY,
    '--only',
    'waiting.duplicate-gets-replay',
  ]

  it('are reported "not run" with the reason, never as passed, and exit 0', async () => {
    const { code, report } = await runReport(waiting())
    expect(report.checks.map((check) => [check.id, check.status])).toEqual([
      ['waiting.duplicate-gets-replay', 'not_run'],
    ])
    expect(report.checks[0]?.reason).toContain('--slow-header')
    expect(report.summary).toEqual({ passed: 0, failed: 0, notRun: 1 })
    expect(code).toBe(0)
  })

  it('exit 1 with --fail-on-not-run', async () => {
    const { code } = await runCommand([...waiting(), '--fail-on-not-run'])
    expect(code).toBe(1)
  })

  it('include the scope checks when no other account key is given', async () => {
    const { code, report } = await runReport([
      '--base-url',
      app.url,
      '--api-key',
      KEY,
      '--only',
      'scope',
    ])
    expect(report.checks.map((check) => [check.id, check.status, check.reason])).toEqual([
      ['scope.accounts-apart', 'not_run', expect.stringContaining('--other-account-key')],
      [
        'scope.keys-of-one-account-shared',
        'not_run',
        expect.stringContaining('--same-account-key'),
      ],
    ])
    expect(code).toBe(0)
  })
})
