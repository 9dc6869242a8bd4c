/**
 * A small reader of V8's .cpuprofile files (what `node --cpu-prof` writes): self time per
 * function, heaviest first.
 */
import { readFileSync } from 'node:fs'

interface ProfileNode {
  readonly id: number
  readonly callFrame: {
    readonly functionName: string
    readonly url: string
    readonly lineNumber: number
  }
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[]
  readonly startTime: number
  readonly endTime: number
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

export interface SelfTime {
  readonly functionName: string
  /** Where it is: a package and file, or a path below the repository. */
  readonly location: string
  /** Milliseconds. */
  readonly selfMs: number
  /** Of all samples, idle included. */
  readonly percent: number
}

export interface ProfileSummary {
  readonly totalMs: number
  /** Of the profile's time, the part the process was not idle. */
  readonly busyPercent: number
  readonly top: readonly SelfTime[]
}

function shorten(url: string, repoRoot: string): string {
  if (url === '') return ''
  const path = url.replace(/^file:\/\//, '')
  const modules = path.lastIndexOf('/node_modules/')
  if (modules !== -1) return path.slice(modules + '/node_modules/'.length)
  return path.startsWith(repoRoot) ? path.slice(repoRoot.length) : path
}

/**
 * The heaviest functions by self time. With `window` (µs on the monotonic clock, which V8's
 * sample times and process.hrtime share on Linux), only the samples inside it count: the
 * measured load, not the start-up or the warm-up. A window no sample falls in is ignored.
 */
export function readCpuProfile(
  file: string,
  repoRoot: string,
  window?: { readonly fromMicros: number; readonly toMicros: number },
  count = 25,
): ProfileSummary & { readonly windowed: boolean } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const collect = (inWindow: (at: number) => boolean) => {
    const microsById = new Map<number, number>()
    let at = profile.startTime
    // timeDeltas[i] is the time from sample i-1 to sample i: it is spent in sample i-1's frame.
    for (let i = 0; i < profile.samples.length; i++) {
      at += profile.timeDeltas[i] ?? 0
      if (!inWindow(at)) continue
      const id = profile.samples[i] as number
      const spent = profile.timeDeltas[i + 1] ?? 0
      microsById.set(id, (microsById.get(id) ?? 0) + spent)
    }
    return microsById
  }
  let microsById =
    window === undefined
      ? new Map<number, number>()
      : collect((at) => at >= window.fromMicros && at <= window.toMicros)
  const windowed = microsById.size > 0
  if (!windowed) microsById = collect(() => true)
  const totals = new Map<string, { functionName: string; location: string; micros: number }>()
  let total = 0
  let idle = 0
  for (const [id, micros] of microsById) {
    const node = byId.get(id)
    if (node === undefined) continue
    total += micros
    const { functionName, url, lineNumber } = node.callFrame
    if (functionName === '(idle)') idle += micros
    const location = url === '' ? '' : `${shorten(url, repoRoot)}:${String(lineNumber + 1)}`
    const name = functionName === '' ? '(anonymous)' : functionName
    const key = `${name} ${location}`
    const entry = totals.get(key) ?? { functionName: name, location, micros: 0 }
    entry.micros += micros
    totals.set(key, entry)
  }
  const top = [...totals.values()]
    .sort((a, b) => b.micros - a.micros)
    .slice(0, count)
    .map((entry) => ({
      functionName: entry.functionName,
      location: entry.location,
      selfMs: entry.micros / 1000,
      percent: total === 0 ? 0 : (entry.micros / total) * 100,
    }))
  return {
    windowed,
    totalMs: total / 1000,
    busyPercent: total === 0 ? 0 : ((total - idle) / total) * 100,
    top,
  }
}
