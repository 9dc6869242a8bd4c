import { CHECKS } from '../checks/index.js'
import {
  renderCheckResult,
  renderHeader,
  renderJsonReport,
  renderSummary,
} from '../report/render-report.js'
import { TargetUnusableError, runConformance } from '../run-conformance.js'
import { describeSlowMode } from '../slow-mode.js'
import { VERSION } from '../version.js'
import { USAGE, UsageError, parseCommand } from './parse-args.js'

export const EXIT_PASSED = 0
export const EXIT_FAILED = 1
export const EXIT_UNUSABLE = 2

export interface CliIo {
  stdout(text: string): void
  stderr(text: string): void
}

/** Runs the command line; resolves the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let command
  try {
    command = parseCommand(argv)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.stderr(`ticksupply-conformance: ${error.message}\n\n${USAGE}`)
    return EXIT_UNUSABLE
  }
  switch (command.kind) {
    case 'help':
      io.stdout(USAGE)
      return EXIT_PASSED
    case 'version':
      io.stdout(`${VERSION}\n`)
      return EXIT_PASSED
    case 'list':
      for (const check of CHECKS) {
        const needs = check.requires === undefined ? '' : ` [needs: ${check.requires.join(', ')}]`
        io.stdout(
          `${check.id.padEnd(40)} ${check.title}${needs}\n${''.padEnd(41)}${check.clause}\n`,
        )
      }
      return EXIT_PASSED
    case 'run':
      break
  }
  const { options, json, failOnNotRun } = command
  if (!json)
    io.stdout(
      renderHeader(VERSION, options.baseUrl, describeSlowMode(options.slow ?? { kind: 'none' })),
    )
  try {
    const report = await runConformance({
      ...options,
      ...(json
        ? {}
        : {
            onResult: (result) => {
              io.stdout(renderCheckResult(result))
            },
          }),
    })
    io.stdout(json ? renderJsonReport(report) : renderSummary(report))
    if (report.summary.failed > 0) return EXIT_FAILED
    if (failOnNotRun && report.summary.notRun > 0) return EXIT_FAILED
    return EXIT_PASSED
  } catch (error) {
    if (!(error instanceof TargetUnusableError)) throw error
    if (json) {
      io.stdout(
        `${JSON.stringify({ error: { code: error.code, message: error.message } }, null, 2)}\n`,
      )
    }
    io.stderr(`ticksupply-conformance: the server cannot be tested: ${error.message}\n`)
    return EXIT_UNUSABLE
  }
}
