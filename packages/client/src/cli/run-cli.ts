import { homedir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createClient } from '../client.js'
import { AlreadyExistsError } from '../errors/already-exists-error.js'
import { isTicksupplyError } from '../errors/any-ticksupply-error.js'
import type { AnyTicksupplyError } from '../errors/any-ticksupply-error.js'
import { createFileKeyStore } from '../file-key-store.js'
import { KeyFileError } from '../key-file-error.js'
import { DEFAULT_BASE_URL } from '../options.js'
import { CLIENT_VERSION } from '../version.js'
import { isIdempotencyKey } from '../idempotency-keys.js'
import type { MutationOptions } from '../send-with-retries.js'
import type { Command, CommandContext, OptionSpec, OptionValues } from './command.js'
import { datastreamCommands, exchangeCommands, instrumentCommands } from './commands/catalog.js'
import { billingCommands } from './commands/billing.js'
import { exportCommands } from './commands/exports.js'
import { schemaCommands } from './commands/schemas.js'
import { subscriptionCommands } from './commands/subscriptions.js'
import { EXIT_CODES } from './exit-codes.js'
import type { ExitOutcome } from './exit-codes.js'
import { formatJson } from './format-json.js'
import { LocalFileError, fileSystemReason } from './file-errors.js'
import { optionalInteger, optionalString } from './option-values.js'
import { createProgress } from './progress.js'
import { UsageError } from './usage-error.js'

const RESOURCES: Readonly<Record<string, Readonly<Record<string, Command>>>> = {
  exchanges: exchangeCommands,
  instruments: instrumentCommands,
  datastreams: datastreamCommands,
  subscriptions: subscriptionCommands,
  exports: exportCommands,
  schemas: schemaCommands,
  billing: billingCommands,
}

const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  json: { type: 'boolean', description: 'print JSON for scripts instead of tables' },
  'base-url': {
    type: 'string',
    placeholder: 'URL',
    description: `the API (env TICKSUPPLY_BASE_URL, default ${DEFAULT_BASE_URL})`,
  },
  'api-key': { type: 'string', placeholder: 'KEY', description: 'env TICKSUPPLY_API_KEY' },
  'timeout-ms': { type: 'string', placeholder: 'MS', description: 'per attempt (default 15000)' },
  verbose: {
    type: 'boolean',
    description: 'report each retry on stderr (and a crash with its stack)',
  },
  help: { type: 'boolean', description: 'show help' },
  version: { type: 'boolean', description: 'print the version' },
}

const MUTATION_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  'idempotency-key': {
    type: 'string',
    placeholder: 'UUID',
    description: 'send this key instead of a fresh one',
  },
  'operation-id': {
    type: 'string',
    placeholder: 'NAME',
    description: 'keep the key on disk under NAME until answered, so a rerun resumes',
  },
  'key-store': {
    type: 'string',
    placeholder: 'DIR',
    description: 'where --operation-id keys live (env TICKSUPPLY_KEY_STORE)',
  },
}

export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
  /** Aborted on Ctrl-C. */
  readonly signal: AbortSignal
  /** Whether stderr is a terminal: progress is shown only there (and never with `--json`). */
  readonly stderrIsTTY?: boolean
}

/** Runs `ticksupply <resource> <verb> ...` and answers the exit status. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let json = argv.includes('--json')
  const verbose = argv.includes('--verbose')
  try {
    const { values, positionals } = parse(argv)
    json = values['json'] === true
    if (values['version'] === true) {
      io.stdout(`ticksupply ${CLIENT_VERSION}\n`)
      return EXIT_CODES.ok
    }
    const [resource, verb, ...rest] = positionals
    if (resource === undefined) {
      // `ticksupply` alone, or with --help: what it can do.
      io.stdout(`${help()}\n`)
      return EXIT_CODES.ok
    }
    const commands = RESOURCES[resource]
    if (commands === undefined || !Object.hasOwn(RESOURCES, resource)) {
      throw new UsageError(`unknown resource "${resource}"`)
    }
    if (verb === undefined && values['help'] === true) {
      io.stdout(`${help(resource)}\n`)
      return EXIT_CODES.ok
    }
    const command =
      verb === undefined || !Object.hasOwn(commands, verb) ? undefined : commands[verb]
    if (command === undefined) {
      throw new UsageError(
        `${verb === undefined ? 'no verb' : `unknown verb "${verb}"`} for ${resource}; try: ${Object.keys(commands).join(', ')}`,
      )
    }
    if (values['help'] === true) {
      io.stdout(`${commandHelp(resource, verb ?? '', command)}\n`)
      return EXIT_CODES.ok
    }
    checkArguments(resource, verb ?? '', command, values, rest)
    return await execute(command, values, rest, io, json)
  } catch (error) {
    return report(error, io, json, verbose)
  }
}

function parse(argv: readonly string[]): { values: OptionValues; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options: allOptions(),
      allowPositionals: true,
      strict: true,
    })
    return { values, positionals }
  } catch (error) {
    // parseArgs says e.g. "Unknown option '--x'"; that is a usage error, not a crash.
    throw new UsageError((error as Error).message)
  }
}

/** Every option of every command, so that one parse finds the resource and verb wherever the options are. */
function allOptions(): Record<string, { type: 'string' | 'boolean' }> {
  const options: Record<string, { type: 'string' | 'boolean' }> = {}
  const add = (specs: Readonly<Record<string, OptionSpec>> | undefined): void => {
    for (const [name, spec] of Object.entries(specs ?? {})) options[name] = { type: spec.type }
  }
  add(GLOBAL_OPTIONS)
  add(MUTATION_OPTIONS)
  for (const commands of Object.values(RESOURCES)) {
    for (const command of Object.values(commands)) add(command.options)
  }
  return options
}

function checkArguments(
  resource: string,
  verb: string,
  command: Command,
  values: OptionValues,
  positionals: readonly string[],
): void {
  const allowed = new Set([
    ...Object.keys(GLOBAL_OPTIONS),
    ...Object.keys(command.options ?? {}),
    ...(command.mutation === true ? Object.keys(MUTATION_OPTIONS) : []),
  ])
  for (const name of Object.keys(values)) {
    if (!allowed.has(name)) throw new UsageError(`${resource} ${verb} takes no --${name}`)
  }
  const wanted = command.positionals ?? []
  if (positionals.length !== wanted.length) {
    throw new UsageError(
      wanted.length === 0
        ? `${resource} ${verb} takes no arguments, got "${positionals.join(' ')}"`
        : `${resource} ${verb} needs ${wanted.join(' ')}`,
    )
  }
}

async function execute(
  command: Command,
  values: OptionValues,
  positionals: readonly string[],
  io: CliIo,
  json: boolean,
): Promise<number> {
  const apiKey = optionalString(values, 'api-key') ?? io.env['TICKSUPPLY_API_KEY']
  if (apiKey === undefined || apiKey === '') {
    throw new UsageError('no API key: pass --api-key or set TICKSUPPLY_API_KEY')
  }
  const baseUrl = optionalString(values, 'base-url') ?? nonEmpty(io.env['TICKSUPPLY_BASE_URL'])
  const timeoutMs = optionalInteger(values, 'timeout-ms')
  const operationId = optionalString(values, 'operation-id')
  const keyStoreDirectory =
    optionalString(values, 'key-store') ??
    nonEmpty(io.env['TICKSUPPLY_KEY_STORE']) ??
    join(homedir(), '.ticksupply', 'operations')
  if (optionalString(values, 'idempotency-key') !== undefined) {
    const key = optionalString(values, 'idempotency-key') ?? ''
    if (!isIdempotencyKey(key)) {
      throw new UsageError(
        `--idempotency-key must be a UUID (hyphenated, simple, braced or urn:uuid:), got "${key}"`,
      )
    }
  }
  let client
  try {
    client = createClient({
      apiKey,
      ...(baseUrl === undefined ? {} : { baseUrl }),
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      ...(operationId === undefined
        ? {}
        : { keyStore: createFileKeyStore({ directory: keyStoreDirectory }) }),
      signal: io.signal,
      onRetry: (event) => {
        if (values['verbose'] !== true) return
        io.stderr(
          `retry ${event.method} ${event.path} after attempt ${String(event.attempt)} (${event.error.code}: ${event.error.message}) in ${String(event.delayMs)} ms\n`,
        )
      },
    })
  } catch (error) {
    // A bad --base-url or --timeout-ms surfaces as the client's TypeError.
    if (error instanceof TypeError) throw new UsageError(error.message)
    throw error
  }
  const idempotencyKey = optionalString(values, 'idempotency-key')
  const mutation: MutationOptions = {
    signal: io.signal,
    ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
    ...(operationId === undefined ? {} : { operationId }),
  }
  const context: CommandContext = {
    client,
    baseUrl: baseUrl ?? DEFAULT_BASE_URL,
    positionals,
    options: values,
    call: { signal: io.signal },
    mutation,
    signal: io.signal,
    print: (value, human) => {
      io.stdout(`${json ? formatJson(value) : human()}\n`)
    },
    info: (line) => {
      if (!json) io.stderr(`${line}\n`)
    },
    progress: createProgress(io.stderr, io.stderrIsTTY === true && !json),
  }
  const outcome: ExitOutcome = (await command.run(context)) ?? 'ok'
  return EXIT_CODES[outcome]
}

/**
 * Prints what went wrong, in one line (a hint may follow), and picks the exit status of its
 * class. Only a crash (a bug) has a stack, and only with `--verbose`.
 */
function report(error: unknown, io: CliIo, json: boolean, verbose: boolean): number {
  if (io.signal.aborted) {
    io.stderr('Interrupted\n')
    return EXIT_CODES.interrupted
  }
  if (error instanceof UsageError) {
    io.stderr(`ticksupply: ${error.message}\nRun "ticksupply --help" for usage.\n`)
    return EXIT_CODES.usage
  }
  const reason = fileSystemReason(error)
  // A damaged file of --key-store is a local file that cannot be read, like a bad --file.
  if (error instanceof LocalFileError || error instanceof KeyFileError || reason !== undefined) {
    const message =
      error instanceof LocalFileError || error instanceof KeyFileError
        ? error.message
        : `a local file failed: ${reason ?? ''}`
    io.stderr(
      json
        ? `${JSON.stringify({ error: { code: 'file_error', message } })}\n`
        : `ticksupply: ${message}\n`,
    )
    return EXIT_CODES.file_error
  }
  if (isTicksupplyError(error)) {
    const details = 'details' in error ? error.details : undefined
    if (json) {
      const body = {
        error: {
          code: error.code,
          message: error.message,
          status: error.status ?? null,
          request_id: error.requestId ?? null,
          ...(details === undefined ? {} : { details }),
        },
      }
      io.stderr(`${JSON.stringify(body)}\n`)
    } else {
      io.stderr(`ticksupply: ${describe(error)}\n`)
    }
    return EXIT_CODES[error.code]
  }
  const message = error instanceof Error ? error.message : String(error)
  io.stderr(
    verbose && error instanceof Error && error.stack !== undefined
      ? `ticksupply: internal error: ${error.stack}\n`
      : `ticksupply: internal error: ${message} (a bug; --verbose shows where)\n`,
  )
  return EXIT_CODES.crash
}

function describe(error: AnyTicksupplyError): string {
  const facts = [
    error.status === undefined ? undefined : `HTTP ${String(error.status)}`,
    error.requestId === undefined ? undefined : `request ${error.requestId}`,
  ].filter((fact) => fact !== undefined)
  const line = `${error.message} [${error.code}]${facts.length === 0 ? '' : ` (${facts.join(', ')})`}`
  const existing =
    error instanceof AlreadyExistsError ? error.details?.['subscription_id'] : undefined
  const hint =
    typeof existing === 'string' ? `The existing subscription is ${existing}.` : HINTS[error.code]
  return hint === undefined ? line : `${line}\n${hint}`
}

const HINTS: Partial<Record<AnyTicksupplyError['code'], string>> = {
  unauthenticated: 'Check --api-key or TICKSUPPLY_API_KEY.',
  network_error: 'Is the server running at --base-url / TICKSUPPLY_BASE_URL?',
  timeout: 'The server did not answer in time; the operation may still complete.',
  idempotency_key_reused: 'That idempotency key was used for a different request.',
  payment_required: 'Check the account with "ticksupply billing summary".',
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}

function help(resource?: string): string {
  const lines = ['Usage: ticksupply <resource> <verb> [arguments] [options]', '']
  for (const [name, commands] of Object.entries(RESOURCES)) {
    if (resource !== undefined && name !== resource) continue
    for (const [verb, command] of Object.entries(commands)) {
      const usage = [name, verb, ...(command.positionals ?? [])].join(' ')
      lines.push(`  ${usage.padEnd(30)} ${command.summary}`)
    }
  }
  lines.push('', 'Options:', ...optionLines(GLOBAL_OPTIONS))
  lines.push('', 'Options of commands that change something:', ...optionLines(MUTATION_OPTIONS))
  lines.push('', 'Run "ticksupply <resource> <verb> --help" for the options of a command.')
  return lines.join('\n')
}

function commandHelp(resource: string, verb: string, command: Command): string {
  const lines = [
    `Usage: ticksupply ${[resource, verb, ...(command.positionals ?? [])].join(' ')} [options]`,
    '',
    command.summary,
  ]
  if (command.options !== undefined) lines.push('', 'Options:', ...optionLines(command.options))
  if (command.mutation === true) lines.push(...optionLines(MUTATION_OPTIONS))
  lines.push('', 'Global options:', ...optionLines(GLOBAL_OPTIONS))
  return lines.join('\n')
}

function optionLines(specs: Readonly<Record<string, OptionSpec>>): string[] {
  return Object.entries(specs).map(([name, spec]) => {
    const flagText = `--${name}${spec.placeholder === undefined ? '' : ` ${spec.placeholder}`}`
    return `  ${flagText.padEnd(30)} ${spec.description}`
  })
}
