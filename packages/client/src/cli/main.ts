#!/usr/bin/env node
import { runCli } from './run-cli.js'

const interrupt = new AbortController()
process.once('SIGINT', () => {
  interrupt.abort()
})

process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  signal: interrupt.signal,
  stderrIsTTY: process.stderr.isTTY,
})
