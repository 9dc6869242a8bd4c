import { spawn } from 'node:child_process'
import type { ConformanceReport } from '../../src/index.js'
import { CONFORMANCE_BIN, REPO_ROOT } from './paths.js'

export interface CommandRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Runs `ticksupply-conformance` with the arguments as a child process, as a user would, to its
 * end (killed after `timeoutMs`).
 */
export function runCommand(args: readonly string[], timeoutMs = 170_000): Promise<CommandRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CONFORMANCE_BIN, ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env['PATH'] ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`ticksupply-conformance ${args.join(' ')} did not end in time: ${stdout}`))
    }, timeoutMs)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** Runs the command with `--json` and parses its report. */
export async function runReport(
  args: readonly string[],
): Promise<CommandRun & { readonly report: ConformanceReport }> {
  const run = await runCommand([...args, '--json'])
  let report: ConformanceReport
  try {
    report = JSON.parse(run.stdout) as ConformanceReport
  } catch {
    throw new Error(`no JSON report (exit ${String(run.code)}): ${run.stdout} ${run.stderr}`)
  }
  return { ...run, report }
}

/** The ids of the report's checks that ended with `status`. */
export function idsWith(
  report: ConformanceReport,
  status: 'passed' | 'failed' | 'not_run',
): string[] {
  return report.checks.filter((check) => check.status === status).map((check) => check.id)
}
