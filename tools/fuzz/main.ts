/**
 * `npm run fuzz`: starts the built server on a fresh SQLite file (or `--database-url`) on
 * 127.0.0.1, sends generated requests from its OpenAPI description, and reports every 5xx,
 * every error outside the envelope, every unauthenticated 2xx on /v1. Exits 1 on a finding.
 *
 *   npm run fuzz -- [--cases 100000] [--seed N] [--concurrency 8] [--postgres | --database-url URL]
 *
 * `--postgres` starts a throwaway PostgreSQL server (the machine's initdb and pg_ctl).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startTemporaryPostgres } from '../support/postgres.js'
import { startServerProcess } from '../support/server-process.js'
import { runFuzz } from './run.js'

const API_KEY = 'fuzz-acme-key-0123456789abcdef'
const OTHER_API_KEY = 'fuzz-globex-key-0123456789abcd'

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: '100000' },
    seed: { type: 'string' },
    concurrency: { type: 'string', default: '8' },
    'database-url': { type: 'string' },
    postgres: { type: 'boolean', default: false },
  },
})
const cases = Number(values.cases)
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed)
const dir = mkdtempSync(join(tmpdir(), 'ticksupply-fuzz-'))
const postgres = values.postgres ? await startTemporaryPostgres() : undefined
const databaseUrl =
  values['database-url'] ?? (await postgres?.createDatabase()) ?? `sqlite:${join(dir, 'fuzz.db')}`
const server = await startServerProcess({
  DATABASE_URL: databaseUrl,
  ARTIFACTS_DIR: join(dir, 'artifacts'),
  API_KEYS: `fuzz:${API_KEY},other:${OTHER_API_KEY}`,
  RATE_LIMIT_PER_MINUTE: '1000000',
  RATE_LIMIT_PER_HOUR: '100000000',
  LOG_LEVEL: 'error',
})
let exitCode = 0
try {
  process.stdout.write(
    `fuzzing ${server.url} (${databaseUrl.startsWith('sqlite:') ? 'SQLite' : 'PostgreSQL'}) with ${String(cases)} cases, seed ${String(seed)}\n`,
  )
  const report = await runFuzz({
    url: server.url,
    apiKey: API_KEY,
    otherApiKey: OTHER_API_KEY,
    cases,
    seed,
    concurrency: Number(values.concurrency),
    onProgress: (sent) => {
      if (sent % 10_000 === 0) process.stdout.write(`  ${String(sent)} sent\n`)
    },
  })
  const ready = await fetch(`${server.url}/readyz`).then(
    (answer) => answer.status,
    () => 0,
  )
  process.stdout.write(
    [
      `${String(report.cases)} cases over ${String(report.endpoints)} operations in ${(report.durationMs / 1000).toFixed(1)} s (seed ${String(report.seed)})`,
      `answers by status: ${JSON.stringify(report.statuses)}`,
      `cases by mutation: ${JSON.stringify(report.kinds)}`,
      'answers by operation:',
      ...Object.entries(report.operations)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([operation, statuses]) => `  ${operation.padEnd(44)} ${JSON.stringify(statuses)}`),
      `findings: ${report.findings.length === 0 ? 'none' : JSON.stringify(report.findingsByKind)}`,
      `server afterwards: ${server.child.exitCode === null ? 'running' : 'exited'}, /readyz ${String(ready)}`,
      '',
    ].join('\n'),
  )
  for (const finding of report.findings.slice(0, 30))
    process.stdout.write(`${JSON.stringify(finding)}\n`)
  if (report.findings.length > 0 || ready !== 200) exitCode = 1
  if (server.stderr().trim() !== '')
    process.stdout.write(`server stderr:\n${server.stderr().slice(-4_000)}\n`)
} finally {
  server.kill('SIGKILL')
  await server.exited
  postgres?.stop()
  rmSync(dir, { recursive: true, force: true })
}
process.exit(exitCode)
