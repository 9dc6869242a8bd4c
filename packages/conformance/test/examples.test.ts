import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BROKEN_VARIANTS, EXAMPLE_ADAPTERS } from '../examples/example-apps.js'
import type { ExampleVariant, RunningExample } from '../examples/example-apps.js'
import { DELAY_HEADER } from '../examples/ticksupply-subset.js'
import { CHECKS } from '../src/index.js'
import { leftoversOf } from './support/leftovers.js'
import { idsWith, runCommand, runReport } from './support/run-command.js'

const ACME_KEY = 'example-acme-key-0001'
const ACME_SECOND_KEY = 'example-acme-key-0002'
const GLOBEX_KEY = 'example-globex-key-0001'
const API_KEYS = { [ACME_KEY]: 'acme', [ACME_SECOND_KEY]: 'acme', [GLOBEX_KEY]: 'globex' }

const args = (url: string) => [
  '--base-url',
  url,
  '--api-key',
  ACME_KEY,
  '--other-account-key',
  GLOBEX_KEY,
  '--same-account-key',
  ACME_SECOND_KEY,
  '--slow-header',
  DELAY_HEADER,
]

describe.each(EXAMPLE_ADAPTERS)('the $name example app', (adapter) => {
  const running: RunningExample[] = []
  const start = async (variant: ExampleVariant) => {
    const app = await adapter.start({ variant, apiKeys: API_KEYS })
    running.push(app)
    return app
  }
  afterAll(async () => {
    await Promise.all(running.map((app) => app.close()))
  })

  describe('built correctly', () => {
    let app: RunningExample
    beforeAll(async () => {
      app = await start('correct')
    })

    it('passes every check, runs them all, cleans up, and bounds its load', async () => {
      const { code, report } = await runReport(args(app.url))
      expect(report.checks.filter((check) => check.status !== 'passed')).toEqual([])
      expect(report.checks.map((check) => check.id)).toEqual(CHECKS.map((check) => check.id))
      expect(code).toBe(0)
      expect(report.summary).toEqual({ passed: CHECKS.length, failed: 0, notRun: 0 })
      expect(report.requests).toBeLessThan(300)
      expect(report.cleanup.problems).toEqual([])
      expect(await leftoversOf(app.url, ACME_KEY)).toEqual({ subscriptions: 0, exportSchemas: 0 })
      expect(await leftoversOf(app.url, GLOBEX_KEY)).toEqual({ subscriptions: 0, exportSchemas: 0 })
    })
  })

  const broken = Object.entries(BROKEN_VARIANTS).filter(([variant]) =>
    adapter.variants.includes(variant as ExampleVariant),
  )
  describe.each(broken)('built so that it %s', (variant, broken) => {
    let app: RunningExample
    beforeAll(async () => {
      app = await start(variant as ExampleVariant)
    })

    it(`fails exactly ${broken.failingChecks.join(' and ')}, and exits 1`, async () => {
      const { code, report } = await runReport(args(app.url))
      expect(idsWith(report, 'failed')).toEqual(broken.failingChecks)
      expect(idsWith(report, 'not_run')).toEqual([])
      expect(code).toBe(1)
      for (const check of report.checks.filter((c) => c.status === 'failed')) {
        expect(check.expected).toEqual(expect.any(String))
        expect(check.actual).toEqual(expect.any(String))
      }
    })

    it('names the broken checks in the readable report, with what was expected and what came', async () => {
      const { code, stdout } = await runCommand([
        ...args(app.url),
        '--only',
        broken.failingChecks.join(','),
      ])
      expect(code).toBe(1)
      for (const id of broken.failingChecks) {
        expect(stdout).toMatch(new RegExp(`^FAIL +${id.replaceAll('.', '\\.')} `, 'm'))
      }
      expect(stdout).toMatch(/^ +expected +\S/m)
      expect(stdout).toMatch(/^ +got +\S/m)
      expect(stdout).toContain(`failed: ${broken.failingChecks.join(', ')}`)
    })
  })
})
