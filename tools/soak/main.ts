/**
 * `npm run soak`: a bounded mixed load on the built server over loopback, with random
 * duplicates, mismatches, client aborts, and SIGKILL and restart of the server, first on SQLite
 * (one process), then on PostgreSQL (two processes on one database, a throwaway server from the
 * machine's initdb and pg_ctl). At the end of each phase: every key's operation ran exactly
 * once (export rows = keys), no key is stuck in progress past the lease, the resident memory of
 * the process that lived through the phase grew less than 10 % after its warm-up, and every
 * replay was byte-identical to its original. Exits 1 when one does not hold.
 *
 *   npm run soak -- [--minutes 10] [--only sqlite|postgres] [--clients 6]
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startTemporaryPostgres } from '../support/postgres.js'
import type { PhaseReport } from './phase.js'
import { runPhase } from './phase.js'

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    only: { type: 'string' },
    clients: { type: 'string', default: '6' },
  },
})
const minutes = Number(values.minutes)
if (!(minutes > 0 && minutes <= 120)) throw new Error('--minutes must be between 0 and 120')
const phases = values.only === undefined ? ['sqlite', 'postgres'] : [values.only]
const phaseMs = (minutes * 60_000) / phases.length
const clients = Number(values.clients)
const leaseMs = 5_000
const MAX_RSS_GROWTH = 0.1
/**
 * Below this, the measured life is mostly warm-up (the V8 heap and the cache of completed
 * records still grow into their size), and the memory figure is shown but not judged.
 */
const MIN_MEASURED_LIFE_MS = 120_000

const dir = mkdtempSync(join(tmpdir(), 'ticksupply-soak-'))
const reports: PhaseReport[] = []
try {
  for (const phase of phases) {
    process.stdout.write(`soak: ${phase}, ${(phaseMs / 60_000).toFixed(1)} min\n`)
    if (phase === 'sqlite') {
      reports.push(
        await runPhase({
          name: 'SQLite, 1 process',
          databaseUrl: `sqlite:${join(dir, 'soak.db')}`,
          artifactsDir: join(dir, 'artifacts-sqlite'),
          instances: 1,
          durationMs: phaseMs,
          // Two kills early, so that the last life (80 %) is long enough to measure.
          killAt: [0.1, 0.2],
          clients,
          leaseMs,
        }),
      )
    } else if (phase === 'postgres') {
      const postgres = await startTemporaryPostgres()
      try {
        reports.push(
          await runPhase({
            name: 'PostgreSQL, 2 processes',
            databaseUrl: await postgres.createDatabase(),
            artifactsDir: join(dir, 'artifacts-postgres'),
            instances: 2,
            durationMs: phaseMs,
            killAt: [0.25, 0.5, 0.75],
            clients,
            leaseMs,
          }),
        )
      } finally {
        postgres.stop()
      }
    } else {
      throw new Error(`--only must be sqlite or postgres, got ${phase}`)
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}

let failed = false
for (const report of reports) {
  const checks = [
    [
      'operations run = distinct keys',
      report.operationsRun === report.keys && report.keysRunTwice === 0,
    ],
    ['no key stuck past the lease', report.stuckKeys === 0],
    [
      `RSS growth under ${String(MAX_RSS_GROWTH * 100)} % after warm-up`,
      report.rss.lifeMs < MIN_MEASURED_LIFE_MS ? 'not judged' : report.rss.growth < MAX_RSS_GROWTH,
    ],
    ['every replay byte-identical, no 5xx but 503', report.violations.length === 0],
  ] as const
  const { counts } = report
  process.stdout.write(
    [
      '',
      `## ${report.name}: ${(report.durationMs / 60_000).toFixed(1)} min`,
      `requests ${String(counts.requests)} (${String(report.requestsPerSecond)}/s): keyed ${String(counts.keyed)}, reads ${String(counts.reads)}`,
      `keys ${String(report.keys)}; operations run ${String(report.operationsRun)} (keys run twice ${String(report.keysRunTwice)}, never ${String(report.keysNeverRun)})`,
      `answers: originals ${String(counts.originals)}, replays ${String(counts.replays)}, mismatches ${String(counts.mismatches)}, in progress ${String(counts.inProgress)}, 503 ${String(counts.unavailable)}, client aborts ${String(counts.aborted)}, no answer (server down) ${String(counts.networkErrors)}`,
      `SIGKILLs ${String(report.kills)}, restarts listening after ${report.restartsMs.map((ms) => `${String(ms)} ms`).join(', ') || '-'}`,
      `RSS of the process that lived through: ${String(report.rss.baselineMb)} MB after warm-up, ${String(report.rss.endMb)} MB at the end (${(report.rss.growth * 100).toFixed(1)} %, ${String(report.rss.samples)} samples)`,
      `  its V8 heap in use ${String(report.heap.baselineMb)} -> ${String(report.heap.endMb)} MB, external ${String(report.external.baselineMb)} -> ${String(report.external.endMb)} MB`,
      `stuck keys ${String(report.stuckKeys)}; violations ${String(report.violations.length)}`,
      ...checks.map(([name, ok]) =>
        ok === 'not judged'
          ? `  ---- ${name}: not judged, the process lived ${String(Math.round(report.rss.lifeMs / 1000))} s (under ${String(MIN_MEASURED_LIFE_MS / 1000)} s)`
          : `  ${ok ? 'PASS' : 'FAIL'} ${name}`,
      ),
      ...report.violations.slice(0, 10).map((violation) => `  ${JSON.stringify(violation)}`),
      '',
    ].join('\n'),
  )
  if (checks.some(([, ok]) => ok === false)) failed = true
}
process.exit(failed ? 1 : 0)
