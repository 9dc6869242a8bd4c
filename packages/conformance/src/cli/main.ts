#!/usr/bin/env node
import { runCli } from './run-cli.js'

// A bug of the suite's own is one line and exit code 2, never a stack trace in a CI log.
const giveUp = (error: unknown) => {
  const message = error instanceof Error ? error.message : String(error)
  process.stderr.write(`ticksupply-conformance: internal error: ${message}\n`)
  process.exit(2)
}
process.on('unhandledRejection', giveUp)

try {
  process.exitCode = await runCli(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  })
} catch (error) {
  giveUp(error)
}
