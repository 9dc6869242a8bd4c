/**
 * `npm run bench`: what the idempotency layer costs and how it behaves under storms, crashes,
 * growth and purges, measured side by side in one invocation. Markdown on stdout (ready for
 * docs/benchmarks.md), progress on stderr. See docs/benchmarks.md for what each group measures.
 *
 *   npm run bench -- [--rounds 3] [--seconds 5] [--warmup 2] [--connections 50]
 *                    [--only handler,server,storm,crash,growth,purge] [--growth-max 1000000]
 *                    [--cpu-prof <scenario>] [--json]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { BenchContext, GroupReport } from './lib/context.js'
import { measureFsyncRate } from './lib/fsync-rate.js'
import { PINNED, installExitHandlers, killEverything, onCleanup } from './lib/processes.js'
import { createServices } from './lib/services.js'
import { CPU_READABLE, CPU_RESOLUTION_MICROS } from './lib/cpu.js'
import { formatNumber } from './lib/table.js'
import { LAYER_NAMES, type Layer } from './apps/layers.js'
import { runHandlerGroup } from './groups/handler.js'
import { runServerGroup } from './groups/server.js'
import { runStormGroup } from './groups/storm.js'
import { runCrashGroup } from './groups/crash.js'
import { runGrowthGroup } from './groups/growth.js'
import { runPurgeGroup } from './groups/purge.js'
import { listProfileScenarios, runCpuProfile } from './groups/cpu-profile.js'

const GROUPS = {
  handler: runHandlerGroup,
  server: runServerGroup,
  storm: runStormGroup,
  crash: runCrashGroup,
  growth: runGrowthGroup,
  purge: runPurgeGroup,
} as const satisfies Record<string, (context: BenchContext) => Promise<GroupReport>>

type GroupName = keyof typeof GROUPS
const GROUP_NAMES = Object.keys(GROUPS) as GroupName[]

const USAGE = `npm run bench -- [options]
  --rounds N          interleaved rounds per throughput scenario (default 3)
  --seconds N         measured seconds per scenario and round (default 5)
  --warmup N          warm-up seconds before each measurement (default 2)
  --connections N     concurrent connections of the load generator (default 50)
  --only LIST         groups to run, comma-separated: ${GROUP_NAMES.join(', ')} (default all)
  --layers LIST       the handler group's rows, comma-separated: ${LAYER_NAMES.join(', ')}
                      (default all; each row's bare baseline runs with it)
  --growth-max N      largest record count of the growth group: 10000 .. 10000000 (default 1000000)
  --cpu-prof NAME     profile one scenario (server under node --cpu-prof) and print its top
                      self-time functions; --cpu-prof list names them
  --json              print the results as JSON instead of markdown
  --help`

function positive(name: string, raw: string, { integer = true, min = 0 } = {}): number {
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new Error(
      `--${name} must be ${integer ? 'an integer' : 'a number'} >= ${String(min)}, got "${raw}"`,
    )
  }
  return value
}

function parseCommandLine() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '2' },
      connections: { type: 'string', default: '50' },
      only: { type: 'string' },
      layers: { type: 'string' },
      'growth-max': { type: 'string', default: '1000000' },
      'cpu-prof': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  })
  const only = (values.only ?? GROUP_NAMES.join(','))
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '')
  for (const name of only) {
    if (!(GROUP_NAMES as string[]).includes(name)) {
      throw new Error(`--only: unknown group "${name}"; groups: ${GROUP_NAMES.join(', ')}`)
    }
  }
  const layers = (values.layers ?? LAYER_NAMES.join(','))
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '')
  for (const name of layers) {
    if (!(LAYER_NAMES as readonly string[]).includes(name)) {
      throw new Error(`--layers: unknown layer "${name}"; layers: ${LAYER_NAMES.join(', ')}`)
    }
  }
  const growthMax = positive('growth-max', values['growth-max'], { min: 10_000 })
  if (growthMax > 10_000_000) throw new Error('--growth-max is at most 10000000')
  return {
    help: values.help,
    json: values.json,
    cpuProf: values['cpu-prof'],
    only: only as GroupName[],
    layers: layers as Layer[],
    growthMax,
    settings: {
      rounds: positive('rounds', values.rounds, { min: 1 }),
      seconds: positive('seconds', values.seconds, { integer: false, min: 0.5 }),
      warmupSeconds: positive('warmup', values.warmup, { integer: false }),
      connections: positive('connections', values.connections, { min: 1 }),
    },
  }
}

function packageVersion(name: string): string {
  try {
    const url = new URL(`../node_modules/${name}/package.json`, import.meta.url)
    return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version
  } catch {
    return 'not installed'
  }
}

async function main(): Promise<void> {
  let options
  try {
    options = parseCommandLine()
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}\n`)
    process.exitCode = 2
    return
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`)
    return
  }
  if (options.cpuProf === 'list') {
    process.stdout.write(`${listProfileScenarios().join('\n')}\n`)
    return
  }
  installExitHandlers()
  const dir = mkdtempSync(join(tmpdir(), 'ticksupply-bench-'))
  // The first cleanup registered runs last: after every process that writes there is gone.
  onCleanup(() => {
    rmSync(dir, { recursive: true, force: true })
  })
  const log = (line: string) => process.stderr.write(`${line}\n`)
  const context: BenchContext = {
    settings: options.settings,
    services: createServices(dir),
    dir,
    growthMax: options.growthMax,
    layers: options.layers,
    log,
    peakWriteRates: new Map(),
  }
  try {
    if (options.cpuProf !== undefined) {
      const report = await runCpuProfile(options.cpuProf, context)
      process.stdout.write(
        options.json ? `${JSON.stringify(report.json, null, 2)}\n` : `${report.markdown}\n`,
      )
      return
    }
    log('measuring the disk: 8 kB writes + fdatasync for 1 s')
    const fsync = measureFsyncRate(dir, 1)
    const header = {
      command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
      date: new Date().toISOString(),
      node: process.version,
      cores: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      pinning: PINNED
        ? 'servers pinned to CPU 0 (taskset), load generator unpinned in the parent'
        : 'no taskset: servers and load generator share the cores',
      cpuSource: CPU_READABLE
        ? `/proc/<pid>/stat of the server process (resolution ${String(CPU_RESOLUTION_MICROS / 1000)} ms)`
        : 'not readable on this OS',
      fsyncPerSecond: fsync.perSecond,
      fsyncMeanMicros: fsync.meanMicros,
      fastify: packageVersion('fastify'),
      autocannon: packageVersion('autocannon'),
      settings: options.settings,
      groups: options.only,
    }
    const reports: Partial<Record<GroupName, GroupReport>> = {}
    for (const name of options.only) {
      log(`\n== ${name} ==`)
      const started = Date.now()
      try {
        reports[name] = await GROUPS[name](context)
      } catch (error) {
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error)
        log(`group ${name} failed: ${message}`)
        reports[name] = {
          markdown: `## ${name}\n\nFailed: ${message.split('\n')[0] ?? ''}`,
          json: { error: message },
        }
      }
      log(`${name} took ${String(Math.round((Date.now() - started) / 1000))} s`)
    }
    if (options.json) {
      const json = Object.fromEntries(
        Object.entries(reports).map(([name, report]) => [name, report.json]),
      )
      process.stdout.write(`${JSON.stringify({ header, results: json }, null, 2)}\n`)
    } else {
      const { rounds, seconds, warmupSeconds, connections } = options.settings
      const lines = [
        `# Benchmark run ${header.date}`,
        '',
        `- Command: \`${header.command}\``,
        `- Node ${header.node}, Fastify ${header.fastify}, autocannon ${header.autocannon}; ${String(header.cores)} cores (${header.cpuModel}); ${header.pinning}`,
        `- Server CPU per request: ${header.cpuSource}`,
        `- Disk: ${formatNumber(fsync.perSecond)} single-stream fsyncs per second (8 kB write + fdatasync, ${formatNumber(fsync.meanMicros)} µs each): the ceiling for one durable commit at a time, without group commit`,
        `- Load: ${String(connections)} connections, ${String(warmupSeconds)} s warm-up + ${String(seconds)} s measured, ${String(rounds)} interleaved rounds (medians)`,
        '',
        ...options.only.flatMap((name) => [reports[name]?.markdown ?? '', '']),
      ]
      process.stdout.write(`${lines.join('\n')}\n`)
    }
  } finally {
    killEverything()
  }
}

await main()
