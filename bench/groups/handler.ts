/**
 * Group "handler": the same `POST /orders` handler, bare and behind each idempotency layer,
 * under load (autocannon, `connections` connections): first requests (a new key each),
 * replays (one key, one body), mismatches (that key, another body) and, for ours, requests
 * without a key.
 */
import { randomUUID } from 'node:crypto'
import type { AutocannonRequest } from 'autocannon'
import { LAYERS, LAYER_NAMES } from '../apps/layers.js'
import type { Layer } from '../apps/layers.js'
import type { BenchContext, GroupReport } from '../lib/context.js'
import { importable } from '../lib/context.js'
import { measureRounds } from '../lib/measure.js'
import type { Scenario, Summary } from '../lib/measure.js'
import { non2xx } from '../lib/load.js'
import { startOrdersServer } from '../lib/orders-server.js'
import { formatNumber, formatSigned, markdownTable } from '../lib/table.js'

/** 31 bytes each, as in the peers' measurements. */
export const ORDER_BODY = '{"item":"widget","quantity":10}'
export const OTHER_ORDER_BODY = '{"item":"gadget","quantity":10}'

export type HandlerScenario = 'plain' | 'first' | 'replay' | 'mismatch' | 'unkeyed'

const SCENARIO_TITLES: Record<HandlerScenario, string> = {
  plain: 'no key',
  first: 'first request',
  replay: 'replay',
  mismatch: 'mismatch',
  unkeyed: 'no key (layer on)',
}

export function scenariosOf(layer: Layer): readonly HandlerScenario[] {
  switch (LAYERS[layer].kind) {
    case 'bare':
      return ['plain']
    case 'ours':
      return ['first', 'replay', 'mismatch', 'unkeyed']
    case 'peer':
      return ['first', 'replay', 'mismatch']
  }
}

/** Why a layer cannot run here, or undefined when it can. */
async function unavailable(layer: Layer, context: BenchContext): Promise<string | undefined> {
  for (const specifier of LAYERS[layer].requires ?? []) {
    const why = await importable(specifier)
    if (why !== undefined) return `\`${specifier}\` cannot be imported (${why})`
  }
  for (const service of LAYERS[layer].needs) {
    try {
      await (service === 'postgres' ? context.services.postgres() : context.services.redis())
    } catch (error) {
      return `${service} could not be started: ${error instanceof Error ? error.message : String(error)}`
    }
  }
  return undefined
}

export function handlerScenario(
  layer: Layer,
  kind: HandlerScenario,
  context: BenchContext,
  nodeFlags?: readonly string[],
): Scenario {
  return {
    id: `handler:${layer}:${kind}`,
    async setUp() {
      const needs = LAYERS[layer].needs
      const server = await startOrdersServer(layer, {
        dir: context.dir,
        ...(needs.includes('postgres')
          ? { postgresUrl: await context.services.freshPostgresDatabase() }
          : {}),
        ...(needs.includes('redis') ? { redisUrl: await context.services.redis() } : {}),
        ...(nodeFlags === undefined ? {} : { nodeFlags }),
      })
      const key = randomUUID()
      if (kind === 'replay' || kind === 'mismatch') {
        const primed = await fetch(`${server.url}/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
          body: ORDER_BODY,
        })
        await primed.arrayBuffer()
        if (primed.status !== 201)
          throw new Error(`${layer}: priming answered ${String(primed.status)}`)
      }
      const keyed = (k: string, body: string): AutocannonRequest => ({
        method: 'POST',
        path: '/orders',
        headers: { 'content-type': 'application/json', 'idempotency-key': k },
        body,
      })
      const plain: AutocannonRequest = {
        method: 'POST',
        path: '/orders',
        headers: { 'content-type': 'application/json' },
        body: ORDER_BODY,
      }
      const next = (): AutocannonRequest => {
        switch (kind) {
          case 'plain':
          case 'unkeyed':
            return plain
          case 'first':
            return keyed(randomUUID(), ORDER_BODY)
          case 'replay':
            return keyed(key, ORDER_BODY)
          case 'mismatch':
            return keyed(key, OTHER_ORDER_BODY)
        }
      }
      return { server, next }
    },
  }
}

interface Row {
  readonly layer: Layer
  readonly scenario: HandlerScenario
  readonly summary: Summary
}

export async function runHandlerGroup(context: BenchContext): Promise<GroupReport> {
  const skipped: { layer: Layer; why: string }[] = []
  const layers: Layer[] = []
  const wanted = new Set(context.layers.flatMap((layer) => [layer, LAYERS[layer].baseline]))
  for (const layer of LAYER_NAMES.filter((name) => wanted.has(name))) {
    const why = await unavailable(layer, context)
    if (why === undefined) layers.push(layer)
    else skipped.push({ layer, why })
  }
  // A bare baseline whose framework is missing takes its layered rows with it.
  const runnable = layers.filter((layer) => layers.includes(LAYERS[layer].baseline))
  for (const layer of layers.filter((l) => !runnable.includes(l))) {
    skipped.push({
      layer,
      why: `its baseline (${LAYERS[LAYERS[layer].baseline].title}) cannot run`,
    })
  }
  const scenarios = runnable.flatMap((layer) =>
    scenariosOf(layer).map((kind) => ({
      layer,
      kind,
      scenario: handlerScenario(layer, kind, context),
    })),
  )
  // A failing layer (a peer that breaks on this Node, say) is reported, not fatal.
  const failed = new Map<string, string>()
  const summaries = await measureRounds(
    scenarios.map(({ scenario }) => scenario),
    context.settings,
    context.log,
    failed,
  )
  const rows: Row[] = []
  for (const { layer, kind, scenario } of scenarios) {
    const summary = summaries.get(scenario.id)
    if (summary !== undefined) rows.push({ layer, scenario: kind, summary })
  }
  for (const store of ['sqlite', 'postgres'] as const) {
    const first = rows.find((row) => row.layer === store && row.scenario === 'first')
    if (first !== undefined) context.peakWriteRates.set(store, first.summary.rps)
  }
  return report(rows, skipped, failed, context)
}

function report(
  rows: readonly Row[],
  skipped: readonly { layer: Layer; why: string }[],
  failed: ReadonlyMap<string, string>,
  context: BenchContext,
): GroupReport {
  const baseline = (layer: Layer) =>
    rows.find((row) => row.layer === LAYERS[layer].baseline && row.scenario === 'plain')?.summary
  const table = markdownTable(
    [
      { title: 'layer (store)' },
      { title: 'scenario' },
      { title: 'req/s', align: 'right' },
      { title: '/ bare', align: 'right' },
      { title: 'p50 ms', align: 'right' },
      { title: 'p99 ms', align: 'right' },
      { title: 'CPU µs/req', align: 'right' },
      { title: 'added CPU µs/req', align: 'right' },
      { title: 'non-2xx', align: 'right' },
    ],
    rows.map(({ layer, scenario, summary }) => {
      const bare = baseline(layer)
      return [
        LAYERS[layer].title,
        SCENARIO_TITLES[scenario],
        formatNumber(summary.rps),
        bare === undefined ? 'n/a' : formatNumber(summary.rps / bare.rps, 2),
        formatNumber(summary.p50, 1),
        formatNumber(summary.p99, 1),
        formatNumber(summary.cpuPerRequest, 1),
        bare === undefined ? 'n/a' : formatSigned(summary.cpuPerRequest - bare.cpuPerRequest),
        describeNon2xx(layer, scenario, summary),
      ]
    }),
  )
  const notes = [
    ...skipped.map(({ layer, why }) => `- Not available: ${LAYERS[layer].title}: ${why}.`),
    ...[...failed].map(([id, why]) => `- Failed to run: ${id}: ${why}`),
  ]
  const { rounds, seconds, warmupSeconds, connections } = context.settings
  const markdown = [
    '## Handler micro-benchmark',
    '',
    `\`POST /orders\` (31-byte JSON body, answers 201 {"id": uuid}), ${String(connections)} connections, ${String(warmupSeconds)} s warm-up + ${String(seconds)} s measured, medians of ${String(rounds)} interleaved rounds. "/ bare" and "added CPU" are against the same framework without a layer. Mismatch rows expect the layer's conflict status.`,
    '',
    table,
    ...(notes.length > 0 ? ['', ...notes] : []),
  ].join('\n')
  return {
    markdown,
    json: {
      rows: rows.map(({ layer, scenario, summary }) => ({
        layer,
        title: LAYERS[layer].title,
        scenario,
        ratioToBare: (() => {
          const bare = baseline(layer)
          return bare === undefined ? null : summary.rps / bare.rps
        })(),
        ...summary,
      })),
      skipped,
      failed: Object.fromEntries(failed),
    },
  }
}

function describeNon2xx(layer: Layer, scenario: HandlerScenario, summary: Summary): string {
  const count = non2xx(summary.statuses) + summary.errors
  const parts = Object.entries(summary.statuses)
    .filter(([code]) => !code.startsWith('2'))
    .map(([code, n]) => `${formatNumber(n)} × ${code}`)
  if (summary.errors > 0) parts.push(`${formatNumber(summary.errors)} errors`)
  if (scenario === 'mismatch') {
    const expectedStatus = String(LAYERS[layer].mismatchStatus ?? 409)
    const expected = summary.statuses[expectedStatus] ?? 0
    if (expected > 0 && expected === count)
      return `${formatNumber(count)} (all ${expectedStatus}, expected)`
    return `${formatNumber(count)} (${parts.length > 0 ? `${parts.join(', ')}; ` : ''}expected ${expectedStatus})`
  }
  return parts.length === 0 ? '0' : `${formatNumber(count)} (${parts.join(', ')})`
}
