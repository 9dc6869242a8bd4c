/**
 * Lint keeps the server's layers: app -> routes -> http -> domain -> db, never upward, and no
 * HTTP framework below http. Each case lints a real source file with one import added, as
 * `npm run lint` would see it.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ESLint } from 'eslint'
import { beforeAll, describe, expect, it } from 'vitest'
import { REPO_ROOT } from './support/server.js'

let eslint: ESLint

beforeAll(() => {
  // Only the import rule, and without type information: typed linting infers a "single run"
  // under CI=true and then parses the file from disk, not the text given here.
  eslint = new ESLint({
    cwd: REPO_ROOT,
    ruleFilter: ({ ruleId }) => ruleId === 'no-restricted-imports',
    overrideConfig: {
      languageOptions: { parserOptions: { project: false, projectService: false } },
    },
  })
})

/** The restricted-import messages of `file` with `line` added at its end. */
async function violations(file: string, line: string): Promise<string[]> {
  const path = join(REPO_ROOT, 'packages/server/src', file)
  const [result] = await eslint.lintText(`${readFileSync(path, 'utf8')}${line}\n`, {
    filePath: path,
  })
  const messages = result?.messages ?? []
  // A file ESLint ignored or could not parse would show no violation either: refuse it.
  expect(messages.filter((message) => message.ruleId === null)).toEqual([])
  return messages
    .filter((message) => message.ruleId === 'no-restricted-imports')
    .map((message) => message.message)
}

describe('the server layer rule', () => {
  it('refuses an import upward, from each layer', async () => {
    const cases: [file: string, line: string, layer: RegExp][] = [
      ['domain/time.ts', "import '../http/envelope.js'", /domain layer imports nothing from http/],
      ['domain/exports/export-jobs.ts', "import '../../routes/billing.js'", /from routes/],
      ['http/query.ts', "import '../routes/catalog.js'", /http layer imports nothing from routes/],
      ['routes/billing.ts', "import '../app.js'", /routes layer imports nothing from app/],
      ['db/placeholders.ts', "import '../domain/time.js'", /db layer imports nothing from domain/],
      ['domain/page.ts', "import 'fastify'", /knows no HTTP framework/],
    ]
    for (const [file, line, expected] of cases) {
      const messages = await violations(file, line)
      expect(messages, `${file} + ${line}`).toHaveLength(1)
      expect(messages[0], file).toMatch(expected)
    }
  })

  it('allows imports downward', async () => {
    expect(await violations('routes/billing.ts', "import '../http/envelope.js'")).toEqual([])
    expect(await violations('http/query.ts', "import '../domain/time.js'")).toEqual([])
    expect(await violations('domain/time.ts', "import '../db/placeholders.js'")).toEqual([])
  })
})
