/**
 * `--cpu-prof <scenario>`: one throughput scenario, its server under `node --cpu-prof`, then
 * the profile's heaviest functions by self time. Scenario names are those of the handler and
 * server groups (`--cpu-prof list`), e.g. `handler:sqlite:first` or `server:postgres:create-keyed`.
 */
import { copyFileSync, mkdirSync, readdirSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LAYERS, LAYER_NAMES, isLayer } from '../apps/layers.js'
import type { BenchContext, GroupReport } from '../lib/context.js'
import { readCpuProfile } from '../lib/cpu-profile-reader.js'
import { measureOnce } from '../lib/measure.js'
import type { Scenario } from '../lib/measure.js'
import { REPO_ROOT } from '../lib/real-server.js'
import { formatNumber, markdownTable } from '../lib/table.js'
import { handlerScenario, scenariosOf } from './handler.js'
import type { HandlerScenario } from './handler.js'
import { SERVER_REQUESTS, serverScenario } from './server.js'
import type { Database, ServerRequest } from './server.js'

export function listProfileScenarios(): string[] {
  return [
    ...LAYER_NAMES.flatMap((layer) => scenariosOf(layer).map((kind) => `handler:${layer}:${kind}`)),
    ...(['sqlite', 'postgres'] as const).flatMap((db) =>
      SERVER_REQUESTS.map((request) => `server:${db}:${request}`),
    ),
  ]
}

function scenarioNamed(
  name: string,
  context: BenchContext,
  nodeFlags: readonly string[],
): Scenario {
  if (!listProfileScenarios().includes(name)) {
    throw new Error(`unknown scenario "${name}"; --cpu-prof list names them`)
  }
  const [group, first, second] = name.split(':') as [string, string, string]
  if (group === 'handler' && isLayer(first)) {
    return handlerScenario(first, second as HandlerScenario, context, nodeFlags)
  }
  return serverScenario(first as Database, second as ServerRequest, context, nodeFlags)
}

export async function runCpuProfile(name: string, context: BenchContext): Promise<GroupReport> {
  const dir = join(context.dir, 'cpu-profile')
  mkdirSync(dir, { recursive: true })
  const scenario = scenarioNamed(name, context, ['--cpu-prof', '--cpu-prof-dir', dir])
  context.log(
    `profiling ${name}: ${String(context.settings.warmupSeconds)} s warm-up + ${String(context.settings.seconds)} s`,
  )
  const result = await measureOnce(scenario, context.settings)
  // The server writes one profile per thread at exit; the main thread's is the largest.
  const files = readdirSync(dir)
    .filter((file) => file.endsWith('.cpuprofile'))
    .map((file) => join(dir, file))
    .sort((a, b) => statSync(b).size - statSync(a).size)
  const file = files[0]
  if (file === undefined) throw new Error('the server wrote no .cpuprofile (did it exit cleanly?)')
  const profile = readCpuProfile(file, REPO_ROOT, result.window)
  // Kept outside the run's directory (which goes at the end), for DevTools or speedscope.
  const kept = join(
    tmpdir(),
    `ticksupply-${name.replaceAll(':', '-')}-${String(Date.now())}.cpuprofile`,
  )
  copyFileSync(file, kept)
  const layer = name.startsWith('handler:') ? name.split(':')[1] : undefined
  const table = markdownTable(
    [
      { title: 'self ms', align: 'right' },
      { title: 'self %', align: 'right' },
      { title: 'function' },
      { title: 'where' },
    ],
    profile.top.map((entry) => [
      formatNumber(entry.selfMs, 1),
      formatNumber(entry.percent, 1),
      entry.functionName,
      entry.location,
    ]),
  )
  return {
    markdown: [
      `## CPU profile: ${name}${layer !== undefined && isLayer(layer) ? ` (${LAYERS[layer].title})` : ''}`,
      '',
      `${formatNumber(result.rps)} req/s, ${formatNumber(result.cpuPerRequest, 1)} µs server CPU per request under the profiler (which slows it); ${formatNumber(profile.totalMs)} ms profiled (${profile.windowed ? 'the measured seconds only' : 'the whole process: no sample fell in the measured window'}), ${formatNumber(profile.busyPercent, 1)}% busy. Top ${String(profile.top.length)} functions by self time ; the whole profile, for DevTools: \`${kept}\`.`,
      '',
      table,
    ].join('\n'),
    json: { scenario: name, load: result, profile },
  }
}
