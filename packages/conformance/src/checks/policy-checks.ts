import type { AccountClient } from '../api/account-client.js'
import { describeReply, truncate } from '../api/describe-reply.js'
import type { Check } from './check.js'
import { fail } from './expect.js'

const POLICY = 'The published policy'

type Json = Record<string, unknown>

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

interface PublishedPolicy {
  /** `METHOD path` of every POST and DELETE under /v1. */
  readonly keyedOperations: readonly string[]
  /** Those of them that do not list an `Idempotency-Key` header parameter. */
  readonly undocumented: readonly string[]
  /**
   * The sentences that can state the policy: the API's description, the `Idempotency-Key`
   * parameters' descriptions, and any `x-...idempotency...` extension.
   */
  readonly sentences: readonly string[]
}

/** Reads `/openapi.json` (no API key needed, but sending one does no harm). */
async function readPolicy(account: AccountClient): Promise<PublishedPolicy> {
  const reply = await account.send({ method: 'GET', path: '/openapi.json' })
  if (reply.status !== 200) fail('200 for GET /openapi.json', describeReply(reply))
  let document: unknown
  try {
    document = JSON.parse(reply.text)
  } catch {
    fail('GET /openapi.json to answer JSON', describeReply(reply))
  }
  if (!isObject(document) || !isObject(document['paths'])) {
    fail('an OpenAPI document with "paths" at /openapi.json', describeReply(reply))
  }
  const components = isObject(document['components']) ? document['components'] : {}
  const sharedParameters = isObject(components['parameters']) ? components['parameters'] : {}
  const resolve = (parameter: unknown): unknown => {
    if (!isObject(parameter) || typeof parameter['$ref'] !== 'string') return parameter
    const name = /^#\/components\/parameters\/(.+)$/.exec(parameter['$ref'])?.[1]
    return name === undefined ? parameter : sharedParameters[name]
  }
  const texts: string[] = []
  const info = document['info']
  if (isObject(info) && typeof info['description'] === 'string') texts.push(info['description'])
  const keyedOperations: string[] = []
  const undocumented: string[] = []
  for (const [path, item] of Object.entries(document['paths'])) {
    if (!path.startsWith('/v1') || !isObject(item)) continue
    const shared: unknown[] = Array.isArray(item['parameters']) ? item['parameters'] : []
    for (const method of ['post', 'delete']) {
      const operation = item[method]
      if (!isObject(operation)) continue
      const name = `${method.toUpperCase()} ${path}`
      keyedOperations.push(name)
      const own: unknown[] = Array.isArray(operation['parameters']) ? operation['parameters'] : []
      const keyParameter = [...shared, ...own]
        .map(resolve)
        .find(
          (parameter): parameter is Json =>
            isObject(parameter) &&
            parameter['in'] === 'header' &&
            typeof parameter['name'] === 'string' &&
            parameter['name'].toLowerCase() === 'idempotency-key',
        )
      if (keyParameter === undefined) {
        undocumented.push(name)
        continue
      }
      if (typeof keyParameter['description'] === 'string') texts.push(keyParameter['description'])
    }
  }
  collectExtensions(document, texts, 0)
  const sentences = [...new Set(texts)].flatMap((text) =>
    text
      .split(/(?<=[.;!?])\s+|\n+/)
      .map((sentence) => sentence.trim())
      .filter((sentence) => sentence !== ''),
  )
  return { keyedOperations, undocumented, sentences }
}

/** Adds the text of every `x-` extension whose name mentions idempotency. */
function collectExtensions(value: unknown, texts: string[], depth: number): void {
  if (depth > 6 || typeof value !== 'object' || value === null) return
  for (const [name, child] of Object.entries(value)) {
    if (/^x-.*idempoten/i.test(name)) {
      texts.push(typeof child === 'string' ? child : JSON.stringify(child))
    } else {
      collectExtensions(child, texts, depth + 1)
    }
  }
}

/** A duration: "24 hours", "3 s", "86400 seconds", "1 day", or ISO 8601 such as "PT24H". */
const DURATION =
  /\b\d+(?:[.,]\d+)?\s*(?:ms|milliseconds?|s|secs?|seconds?|min|mins|minutes?|h|hrs?|hours?|d|days?)\b|\bP(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+S)?)?\b/i
const LIFETIME = /\b(?:lifetime|lives?|expires?|expiry|kept|retained|remembered|valid for|ttl)\b/i
const WAITING = /\bwait(?:s|ing)?\b/i
const SERVER_ERRORS = /\b5xx\b|\b5\d\d\b/i
const STORING = /\b(?:stor(?:e|ed|es|ing)|replay(?:s|ed)?|record(?:s|ed)?|sav(?:e|ed|es))\b/i

/** The sentences that match every pattern, or a failure quoting what the document says. */
function expectSentence(
  policy: PublishedPolicy,
  patterns: readonly RegExp[],
  expected: string,
): void {
  if (policy.sentences.some((sentence) => patterns.every((pattern) => pattern.test(sentence))))
    return
  const said = policy.sentences.join(' ')
  fail(
    `/openapi.json to state ${expected} (in the Idempotency-Key parameter's or the API's description)`,
    said === '' ? 'no description at all' : `it says: ${truncate(said, 400)}`,
  )
}

export const policyChecks: readonly Check[] = [
  {
    id: 'policy.key-header-documented',
    title: 'The API description documents Idempotency-Key on every POST and DELETE, as a UUID',
    clause: `${POLICY}: "The API description (/openapi.json) states this policy ...: the key's format"`,
    async run({ account }) {
      const policy = await readPolicy(account)
      if (policy.keyedOperations.length === 0) {
        fail('POST and DELETE operations under /v1 in /openapi.json', 'none')
      }
      if (policy.undocumented.length > 0) {
        fail(
          'an Idempotency-Key header parameter on every POST and DELETE under /v1',
          `missing on ${policy.undocumented.join(', ')}`,
        )
      }
      expectSentence(policy, [/\buuid\b/i], 'that the key is a UUID')
    },
  },
  {
    id: 'policy.lifetime-documented',
    title: "The API description states the key's lifetime",
    clause: `${POLICY}: "the key's format and lifetime"; Expiry: "A record lives 24 hours from its first claim (configurable)"`,
    async run({ account }) {
      expectSentence(
        await readPolicy(account),
        [LIFETIME, DURATION],
        'how long a key lives (a duration)',
      )
    },
  },
  {
    id: 'policy.wait-documented',
    title: 'The API description states the wait for a request in progress',
    clause: `${POLICY}: "the wait for a request in progress"`,
    async run({ account }) {
      expectSentence(
        await readPolicy(account),
        [WAITING, DURATION],
        'how long a duplicate waits for a request in progress (a duration)',
      )
    },
  },
  {
    id: 'policy.stored-responses-documented',
    title: 'The API description states which responses are stored',
    clause: `${POLICY}: "which responses are stored"; What is stored: "A 5xx or a 408 request_timeout is not stored"`,
    async run({ account }) {
      const policy = await readPolicy(account)
      expectSentence(policy, [SERVER_ERRORS, STORING], 'whether 5xx answers are stored')
      expectSentence(policy, [/\b408\b/, STORING], 'whether a 408 is stored')
    },
  },
]
