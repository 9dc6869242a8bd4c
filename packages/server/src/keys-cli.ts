import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from './config.js'
import { migrate } from './db/migrations.js'
import { seedCatalog } from './domain/catalog.js'
import { openDatabase } from './db/open-database.js'
import type { AccessStatus } from './domain/accounts.js'
import { addApiKey, ensureAccount, generateApiKey, setAccessStatus } from './domain/accounts.js'

const USAGE = `Usage:
  npm run keys -- create --account <name>          create the account if needed and print a new API key (shown once)
  npm run keys -- access --account <name> --status <ACTIVE|TRIALING|GRACE|SUSPENDED|NONE>
The database is the server's: DATABASE_URL (default sqlite:./data/ticksupply.db, or postgres://...).`

const STATUSES: readonly AccessStatus[] = ['ACTIVE', 'TRIALING', 'GRACE', 'SUSPENDED', 'NONE']

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
      options: {
        account: { type: 'string' },
        status: { type: 'string' },
        help: { type: 'boolean' },
      },
    })
  } catch (error) {
    fail((error as Error).message)
  }
  const [command] = parsed.positionals
  if (parsed.values.help === true || command === undefined) fail('Tell me what to do.')
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
  const { db } = openDatabase(config.database)
  const now = Date.now()
  await migrate(db, now, seedCatalog)
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
      if (!(await setAccessStatus(db, account, status))) fail(`No account named "${account}"`)
      process.stdout.write(`Account "${account}" access status: ${status}\n`)
    } else {
      fail(`Unknown command "${command}".`)
    }
  } finally {
    await db.close()
  }
}

await main()
