import type { AnyTicksupplyError } from './errors/any-ticksupply-error.js'
import { isHeaderValue } from './header-value.js'
import type { KeyStore } from './key-store.js'

/** When and how often a failed attempt is tried again. */
export interface RetryOptions {
  /**
   * Attempts in all, the first one included; 1 turns retries off.
   * @default 5
   */
  readonly maxAttempts?: number
  /**
   * The backoff ceiling before the first retry; it doubles for each later retry, and the
   * actual wait is drawn uniformly between 0 and the ceiling ("full jitter"), so that many
   * clients failing together do not retry together.
   * @default 250
   */
  readonly baseDelayMs?: number
  /**
   * The most the backoff ceiling grows to.
   * @default 8_000
   */
  readonly maxDelayMs?: number
  /**
   * The longest `Retry-After` honoured; a longer one is cut to this.
   * @default 60_000
   */
  readonly maxRetryAfterMs?: number
}

/** Told before each retry, e.g. to log it. */
export interface RetryEvent {
  readonly method: string
  readonly path: string
  /** The attempt that failed, from 1. */
  readonly attempt: number
  readonly error: AnyTicksupplyError
  readonly delayMs: number
  /** The key every attempt of this operation sends; undefined for GET and PUT. */
  readonly idempotencyKey: string | undefined
}

export interface ClientOptions {
  /** Sent as `X-Api-Key` on every request. */
  readonly apiKey: string
  /**
   * Where the API is; paths such as `/v1/exchanges` are appended.
   * @default 'http://127.0.0.1:8080'
   */
  readonly baseUrl?: string
  /**
   * The most one attempt may take, from sending to the end of the body. The server gives
   * up on its own after 10 s (`408`), so a little more than that is enough.
   * @default 15_000
   */
  readonly timeoutMs?: number
  /**
   * The most one call may take in all, retries and waits included. No retry starts that
   * would end after it.
   * @default 60_000
   */
  readonly deadlineMs?: number
  readonly retry?: RetryOptions
  /**
   * Keeps the key of an operation started with an `operationId`, so that it survives a
   * restart of the process. Without one, `operationId` cannot be used.
   * @default undefined
   */
  readonly keyStore?: KeyStore
  /**
   * Aborts every call of this client.
   * @default undefined
   */
  readonly signal?: AbortSignal
  /**
   * The fetch to use.
   * @default globalThis.fetch
   */
  readonly fetch?: typeof globalThis.fetch
  /**
   * The random source of the backoff jitter, returning values in [0, 1).
   * @default Math.random
   */
  readonly random?: () => number
  /**
   * Called before each retry.
   * @default undefined
   */
  readonly onRetry?: (event: RetryEvent) => void
}

export interface ResolvedRetryOptions {
  readonly maxAttempts: number
  readonly baseDelayMs: number
  readonly maxDelayMs: number
  readonly maxRetryAfterMs: number
}

export interface ResolvedClientOptions {
  readonly apiKey: string
  /** Without a trailing slash. */
  readonly baseUrl: string
  readonly timeoutMs: number
  readonly deadlineMs: number
  readonly retry: ResolvedRetryOptions
  readonly keyStore: KeyStore | undefined
  readonly signal: AbortSignal | undefined
  readonly fetch: typeof globalThis.fetch
  readonly random: () => number
  readonly onRetry: ((event: RetryEvent) => void) | undefined
}

export const DEFAULT_BASE_URL = 'http://127.0.0.1:8080'

/**
 * The longest duration an option may have: 2^31 - 1 ms (about 24.8 days), the longest timer
 * Node.js keeps. A longer one would fire after 1 ms (with a TimeoutOverflowWarning), turning a
 * long wait into none.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1

/** Validates the options once, fills in the defaults, and throws a `TypeError` naming a bad one. */
export function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  // Checked at run time as well: JavaScript callers and JSON configs bypass the types.
  const given = options as Partial<Record<keyof ClientOptions, unknown>>
  if (typeof given.apiKey !== 'string' || given.apiKey.trim() === '') {
    throw new TypeError('Expected `apiKey` to be a non-empty string.')
  }
  if (!isHeaderValue(given.apiKey)) {
    throw new TypeError(
      'Expected `apiKey` to be Latin-1 characters without line breaks or NUL (it is sent as a header).',
    )
  }
  const retry = options.retry ?? {}
  const baseDelayMs = duration('retry.baseDelayMs', retry.baseDelayMs, 250, true)
  const maxDelayMs = duration('retry.maxDelayMs', retry.maxDelayMs, 8_000, true)
  if (maxDelayMs < baseDelayMs) {
    throw new TypeError(
      `Expected \`retry.maxDelayMs\` (${String(maxDelayMs)}) to be at least \`retry.baseDelayMs\` (${String(baseDelayMs)}).`,
    )
  }
  return {
    apiKey: given.apiKey,
    baseUrl: resolveBaseUrl(options.baseUrl ?? DEFAULT_BASE_URL),
    timeoutMs: duration('timeoutMs', options.timeoutMs, 15_000, false),
    deadlineMs: duration('deadlineMs', options.deadlineMs, 60_000, false),
    retry: {
      maxAttempts: attempts(retry.maxAttempts),
      baseDelayMs,
      maxDelayMs,
      maxRetryAfterMs: duration('retry.maxRetryAfterMs', retry.maxRetryAfterMs, 60_000, true),
    },
    keyStore: resolveKeyStore(options.keyStore),
    signal: resolveSignal(options.signal),
    fetch: fn('fetch', options.fetch, globalThis.fetch),
    random: fn('random', options.random, Math.random),
    onRetry: fn<((event: RetryEvent) => void) | undefined>('onRetry', options.onRetry, undefined),
  }
}

/** Validates a per-call duration the same way as the client-wide one. */
export function resolveCallDuration(name: string, value: unknown, fallback: number): number {
  return duration(name, value, fallback, false)
}

function resolveBaseUrl(value: unknown): string {
  if (typeof value !== 'string') throw new TypeError('Expected `baseUrl` to be a string.')
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new TypeError(`Expected \`baseUrl\` to be an absolute URL, got "${value}".`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`Expected \`baseUrl\` to be an http: or https: URL, got "${value}".`)
  }
  if (url.search !== '' || url.hash !== '') {
    throw new TypeError(`Expected \`baseUrl\` to have no query or fragment, got "${value}".`)
  }
  return url.href.replace(/\/+$/, '')
}

function duration(name: string, value: unknown, fallback: number, zeroAllowed: boolean): number {
  if (value === undefined) return fallback
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < 0 ||
    value > MAX_DURATION_MS ||
    (value === 0 && !zeroAllowed)
  ) {
    const range = `at most ${String(MAX_DURATION_MS)}`
    const wanted = zeroAllowed ? `a number >= 0 and ${range}` : `a number > 0 and ${range}`
    throw new TypeError(`Expected \`${name}\` to be ${wanted} (milliseconds), got ${show(value)}.`)
  }
  return value
}

function attempts(value: unknown): number {
  if (value === undefined) return 5
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new TypeError(`Expected \`retry.maxAttempts\` to be an integer >= 1, got ${show(value)}.`)
  }
  return value
}

function fn<T>(name: string, value: T | undefined, fallback: T): T {
  if (value === undefined) return fallback
  if (typeof value !== 'function') {
    throw new TypeError(`Expected \`${name}\` to be a function, got ${typeof value}.`)
  }
  return value
}

/** The bad value, for the message: numbers as such, anything else by its type. */
function show(value: unknown): string {
  return typeof value === 'number' ? String(value) : typeof value
}

function resolveKeyStore(store: KeyStore | undefined): KeyStore | undefined {
  if (store === undefined) return undefined
  const methods = store as Partial<Record<keyof KeyStore, unknown>> | null
  if (
    methods === null ||
    typeof methods.get !== 'function' ||
    typeof methods.set !== 'function' ||
    typeof methods.delete !== 'function'
  ) {
    throw new TypeError('Expected `keyStore` to have get, set and delete methods.')
  }
  return store
}

function resolveSignal(value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined
  if (!(value instanceof AbortSignal))
    throw new TypeError('Expected `signal` to be an AbortSignal.')
  return value
}
