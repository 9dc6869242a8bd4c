import { combineSignals } from './combine-signals.js'
import { MAX_DURATION_MS } from './options.js'
import type { CallOptions } from './send-with-retries.js'
import { sleep } from './retry.js'
import type { ExportJob, ExportStatus } from './types.js'

/** Told after each look at a job that has not finished yet. */
export interface ExportProgress {
  readonly job: ExportJob
  /** Since `waitFor` started. */
  readonly elapsedMs: number
  /** How many times the job was read so far. */
  readonly polls: number
}

export interface WaitForExportOptions extends CallOptions {
  readonly onProgress?: (progress: ExportProgress) => void
  /**
   * The first wait between two reads; it doubles up to `maxPollMs`, to spare the rate limit on
   * long exports while short ones finish fast.
   * @default 500
   */
  readonly pollMs?: number
  /** @default 5_000 */
  readonly maxPollMs?: number
}

/** The states a job does not leave. */
export const FINISHED_EXPORT_STATUSES: ReadonlySet<ExportStatus> = new Set([
  'succeeded',
  'failed',
  'canceled',
])

/**
 * Reads the job until it has finished (succeeded, failed or canceled) and resolves it; a job
 * that failed or was canceled resolves too: its `status` says so. Rejects with the signal's
 * reason when `signal` or the client's `clientSignal` aborts (between reads too), and with the
 * API's error when a read fails for good.
 */
export async function waitForExport(
  get: (id: string, options: CallOptions) => Promise<ExportJob>,
  id: string,
  options: WaitForExportOptions = {},
  clientSignal?: AbortSignal,
): Promise<ExportJob> {
  const { onProgress, pollMs = 500, maxPollMs = 5_000, ...call } = options
  if (!Number.isFinite(pollMs) || pollMs <= 0 || pollMs > MAX_DURATION_MS)
    throw new TypeError(
      `Expected \`pollMs\` to be a number > 0 and at most ${String(MAX_DURATION_MS)}, got ${String(pollMs)}.`,
    )
  if (!Number.isFinite(maxPollMs) || maxPollMs < pollMs || maxPollMs > MAX_DURATION_MS)
    throw new TypeError(
      `Expected \`maxPollMs\` to be at least \`pollMs\` and at most ${String(MAX_DURATION_MS)}, got ${String(maxPollMs)}.`,
    )
  // The reads get the client's signal from the client; the sleeps between them need it too.
  const signal = combineSignals(clientSignal, call.signal)
  const startedAt = Date.now()
  let delayMs = pollMs
  for (let polls = 1; ; polls++) {
    const job = await get(id, call)
    if (FINISHED_EXPORT_STATUSES.has(job.status)) return job
    onProgress?.({ job, elapsedMs: Date.now() - startedAt, polls })
    await sleep(delayMs, signal)
    delayMs = Math.min(delayMs * 2, maxPollMs)
  }
}
