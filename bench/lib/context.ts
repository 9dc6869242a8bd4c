/** What every benchmark group gets, and what it gives back. */
import type { LoadSettings } from './measure.js'
import type { Services } from './services.js'
import type { Layer } from '../apps/layers.js'

export interface BenchContext {
  readonly settings: LoadSettings
  readonly services: Services
  /** The run's temporary directory (removed at the end). */
  readonly dir: string
  /** Largest record count of the growth group. */
  readonly growthMax: number
  /** The handler group's rows (each runs with its bare baseline). */
  readonly layers: readonly Layer[]
  /** Progress, on stderr. */
  readonly log: (line: string) => void
  /** Peak keyed first-request rate per store, from the handler group (for the purge group). */
  readonly peakWriteRates: Map<string, number>
}

export interface GroupReport {
  /** Markdown: a heading, tables and notes. */
  readonly markdown: string
  /** The same results, machine-readable. */
  readonly json: unknown
}

/** Whether `specifier` can be imported here; the error's first line otherwise. */
export async function importable(specifier: string): Promise<string | undefined> {
  try {
    await (import(specifier) as Promise<unknown>)
    return undefined
  } catch (error) {
    return (error instanceof Error ? error.message : String(error)).split('\n')[0]
  }
}
