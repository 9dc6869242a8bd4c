import { parseArgs } from 'node:util'
import { ConfigError, describeDatabase, loadConfig } from './config.js'
import { migrate } from './db/migrations.js'
import { seedCatalog } from './domain/catalog.js'
import { openDatabase } from './db/open-database.js'
import type { AccessStatus } from './domain/accounts.js'
import {
  addApiKey,
  ensureAccount,
  generateApiKey,
  setAccessStatus,
  setPlan,
} from './domain/accounts.js'
import { PLAN_CODES, isPlanCode } from './domain/plans.js'

const USAGE = `Usage:
  npm run keys -- create --account <name>          create the account if needed and print a new API key (shown once)
  npm run keys -- access --account <name> --status <ACTIVE|TRIALING|GRACE|SUSPENDED|NONE> [--grace-until <date-time>]
                                                   GRACE ends at --grace-until (RFC 3339; default in 7 days), then counts as SUSPENDED
  npm run keys -- plan --account <name> --plan <${PLAN_CODES.join('|')}>
The database is the server's: DATABASE_URL (default sqlite:./data/ticksupply.db, or postgres://...).`

const STATUSES: readonly AccessStatus[] = ['ACTIVE', 'TRIALING', 'GRACE', 'SUSPENDED', 'NONE']
const DEFAULT_GRACE_MS = 7 * 24 * 3_600_000
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i

function fail(message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}\n`)
  process.exit(2)
}

async function main(): Promise<void> {
  let parsed
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      allowPositionals: true,
      tokens: true,
      options: {
        account: { type: 'string' },
        status: { type: 'string' },
        'grace-until': { type: 'string' },
        plan: { type: 'string' },
        help: { type: 'boolean' },
      },
    })
  } catch (error) {
    fail((error as Error).message)
  }
  const named = parsed.tokens.flatMap((token) => (token.kind === 'option' ? [token.name] : []))
  const repeated = named.find((name, index) => named.indexOf(name) !== index)
  if (repeated !== undefined) fail(`--${repeated} is given twice.`)
  if (parsed.values.help === true) {
    process.stdout.write(`${USAGE}\n`)
    return
  }
  const [command, ...extra] = parsed.positionals
  if (command === undefined) fail('Tell me what to do.')
  if (!['create', 'access', 'plan'].includes(command)) fail(`Unknown command "${command}".`)
  if (extra.length > 0) fail(`Unexpected argument "${extra.join(' ')}".`)
  const account = parsed.values.account
  if (account === undefined || !/^[A-Za-z0-9_.-]{1,64}$/.test(account)) {
    fail('--account <name> is required: letters, digits, _ . - (at most 64)')
  }
  let config
  try {
    config = loadConfig(process.env)
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message)
    throw error
  }
  const now = Date.now()
  let db
  try {
    db = openDatabase(config.database).db
    await migrate(db, now, seedCatalog)
  } catch (error) {
    // One line naming the setting, as the server says it: a stack trace of a file that is not
    // a database, or of a refused connection, is no help.
    process.stderr.write(
      `keys: cannot open the database of DATABASE_URL (${describeDatabase(config.database)}): ${error instanceof Error ? error.message : String(error)}\n`,
    )
    await db?.close().catch(() => undefined)
    process.exit(2)
  }
  try {
    if (command === 'create') {
      const created = await ensureAccount(db, account, now)
      const apiKey = generateApiKey()
      await addApiKey(db, created.id, apiKey, now)
      process.stdout.write(
        `${apiKey}\n` +
          (process.stdout.isTTY
            ? `\nAPI key for account "${account}". It is shown only this once; send it as the X-Api-Key header.\n`
            : ''),
      )
    } else if (command === 'access') {
      const status = STATUSES.find((candidate) => candidate === parsed.values.status)
      if (status === undefined) fail(`--status must be one of ${STATUSES.join(', ')}`)
      const graceUntil =
        status === 'GRACE' ? parseGraceUntil(parsed.values['grace-until'], now) : null
      if (status !== 'GRACE' && parsed.values['grace-until'] !== undefined) {
        fail('--grace-until goes only with --status GRACE')
      }
      if (!(await setAccessStatus(db, account, status, graceUntil))) {
        fail(`No account named "${account}"`)
      }
      process.stdout.write(
        `Account "${account}" access status: ${status}` +
          (graceUntil === null ? '' : ` until ${new Date(graceUntil).toISOString()}`) +
          '\n',
      )
    } else if (command === 'plan') {
      const plan = parsed.values.plan
      if (plan === undefined || !isPlanCode(plan))
        fail(`--plan must be one of ${PLAN_CODES.join(', ')}`)
      if (!(await setPlan(db, account, plan))) fail(`No account named "${account}"`)
      process.stdout.write(`Account "${account}" plan: ${plan}\n`)
    } else {
      fail(`Unknown command "${command}".`)
    }
  } finally {
    await db.close()
  }
}

/** `--grace-until`: an RFC 3339 date-time in the future; by default a week from now. */
function parseGraceUntil(value: string | undefined, now: number): number {
  if (value === undefined) return now + DEFAULT_GRACE_MS
  const at = RFC3339.test(value) ? Date.parse(value) : Number.NaN
  if (Number.isNaN(at)) fail(`--grace-until must be an RFC 3339 date-time, got "${value}"`)
  if (at <= now) fail('--grace-until must be in the future')
  return at
}

await main()
