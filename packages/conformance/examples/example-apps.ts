import { startExpressExample } from './express/express-example.js'
import { startFastifyExample } from './fastify/fastify-example.js'
import { startFetchExample } from './fetch/fetch-example.js'

/**
 * How an example app is built: correct, or with one deliberate defect that the conformance
 * suite must catch.
 */
export type ExampleVariant =
  | 'correct'
  | 'stores-after-sending'
  | 'compares-raw-keys'
  | 'answers-409-at-once'
  | 'waits-5-seconds'
  | 'trims-the-body'
  | 'keys-by-content-type'

export interface ExampleStartOptions {
  readonly variant: ExampleVariant
  /** API key -> account name; several keys may name one account. */
  readonly apiKeys: Readonly<Record<string, string>>
}

export interface RunningExample {
  /** Where it listens, on 127.0.0.1. */
  readonly url: string
  close(): Promise<void>
}

/** One framework's example app: the Ticksupply subset mounted behind that framework's adapter. */
export interface ExampleAdapter {
  readonly name: string
  /** The variants it can be built as: `correct`, and the defects the suite is shown on. */
  readonly variants: readonly ExampleVariant[]
  start(options: ExampleStartOptions): Promise<RunningExample>
}

/**
 * Every adapter's example app. Another adapter (Express, fetch) joins the suite's tests as one
 * more entry here: its `start` mounts the route table of ./ticksupply-subset.ts behind that
 * adapter, on the engine and scope of ./example-engine.ts (which carry the `answers-409-at-once`
 * and `compares-raw-keys` defects for every framework), with its own `stores-after-sending`.
 */
export const EXAMPLE_ADAPTERS: readonly ExampleAdapter[] = [
  {
    name: 'fastify',
    variants: [
      'correct',
      'stores-after-sending',
      'compares-raw-keys',
      'answers-409-at-once',
      'waits-5-seconds',
      'trims-the-body',
      'keys-by-content-type',
    ],
    start: startFastifyExample,
  },
  // The defects live in the engine and the scope for every framework, and are shown on the
  // Fastify app; the Express and fetch apps are checked as built correctly.
  { name: 'express', variants: ['correct'], start: startExpressExample },
  { name: 'fetch', variants: ['correct'], start: startFetchExample },
]

/** What each broken variant does wrong, and exactly which checks must fail because of it. */
export const BROKEN_VARIANTS: Readonly<
  Record<
    Exclude<ExampleVariant, 'correct'>,
    { readonly defect: string; readonly failingChecks: readonly string[] }
  >
> = {
  'stores-after-sending': {
    defect: 'stores the response after it was sent, and only if it could be sent',
    failingChecks: ['exit.client-gone-keeps-response'],
  },
  'compares-raw-keys': {
    defect: 'finds records by the key as sent, not by its canonical form',
    failingChecks: ['key.canonical-equality', 'concurrency.spellings-run-once'],
  },
  'answers-409-at-once': {
    defect: 'answers a duplicate of a running request with 409 at once instead of waiting',
    // Its 409 for an original that outlasts the wait comes at once, not after about the wait.
    failingChecks: ['waiting.duplicate-gets-replay', 'waiting.in-progress-409'],
  },
  'waits-5-seconds': {
    defect: 'publishes the wait of the contract, 3 s, but makes a duplicate wait 5 s',
    failingChecks: ['waiting.in-progress-409'],
  },
  'trims-the-body': {
    defect: 'fingerprints the body with its leading and trailing whitespace trimmed',
    failingChecks: ['mismatch.body'],
  },
  'keys-by-content-type': {
    defect: 'keeps records apart by Content-Type, a header, as if it were part of the request',
    failingChecks: ['replay.headers-do-not-count'],
  },
}
