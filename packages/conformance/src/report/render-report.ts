import type { CheckResult, CheckStatus, ConformanceReport } from '../run-conformance.js'

const MARKS: Record<CheckStatus, string> = {
  passed: 'pass   ',
  failed: 'FAIL   ',
  not_run: 'not run',
}

/** The first lines of the text report: what is checked against what. */
export function renderHeader(version: string, baseUrl: string, slowMode: string): string {
  return [
    `ticksupply-conformance ${version}: the idempotency contract (spec/idempotency.md) against ${baseUrl}`,
    `slow operations: ${slowMode}`,
    '',
    '',
  ].join('\n')
}

/** One check: a line with its mark, id and title; for a failure, what was expected and got. */
export function renderCheckResult(result: CheckResult): string {
  const lines = [`${MARKS[result.status]}  ${result.id.padEnd(40)} ${result.title}`]
  const detail = (label: string, text: string | undefined) => {
    if (text !== undefined) lines.push(`         ${label.padEnd(9)} ${text}`)
  }
  if (result.status === 'failed') {
    detail('clause', result.clause)
    detail('expected', result.expected)
    detail('got', result.actual)
  }
  if (result.status === 'not_run') detail('why', result.reason)
  return `${lines.join('\n')}\n`
}

/** The closing lines: counts, requests, time and what was cleaned up. */
export function renderSummary(report: ConformanceReport): string {
  const { passed, failed, notRun } = report.summary
  const total = passed + failed + notRun
  const lines = [
    '',
    `${String(total)} checks: ${String(passed)} passed, ${String(failed)} failed, ${String(notRun)} not run` +
      ` (${String(report.requests)} requests, ${(report.durationMs / 1000).toFixed(1)} s)`,
    `cleanup: deleted ${String(report.cleanup.deletedSubscriptions)} subscriptions and ${String(report.cleanup.deletedExportSchemas)} export schemas`,
    ...report.cleanup.problems.map((problem) => `cleanup problem: ${problem}`),
  ]
  if (failed > 0) {
    lines.push(
      `failed: ${report.checks
        .filter((c) => c.status === 'failed')
        .map((c) => c.id)
        .join(', ')}`,
    )
  }
  return `${lines.join('\n')}\n`
}

/** The whole readable report. */
export function renderTextReport(report: ConformanceReport): string {
  return (
    renderHeader(report.version, report.baseUrl, report.slowMode) +
    report.checks.map(renderCheckResult).join('') +
    renderSummary(report)
  )
}

/** The report for machines: the {@link ConformanceReport} as JSON. */
export function renderJsonReport(report: ConformanceReport): string {
  return `${JSON.stringify(report, null, 2)}\n`
}
