import type { AnyTicksupplyError } from './errors/any-ticksupply-error.js'
import { combineSignals } from './combine-signals.js'
import { isTicksupplyError } from './errors/any-ticksupply-error.js'
import { createApiError } from './errors/create-api-error.js'
import { TimeoutError } from './errors/timeout-error.js'
import { UnexpectedResponseError } from './errors/unexpected-response-error.js'
import { isHeaderValue } from './header-value.js'
import { stringifyBody } from './json-body.js'
import { createIdempotencyKey, isIdempotencyKey } from './idempotency-keys.js'
import type { KeyStore } from './key-store.js'
import type { ResolvedClientOptions } from './options.js'
import { resolveCallDuration } from './options.js'
import type { HttpResponse } from './request.js'
import { sendRequest } from './request.js'
import { parseRetryAfter } from './retry-after.js'
import type { ResponseMetadata } from './response-metadata.js'
import { readRateLimit } from './response-metadata.js'
import { computeRetryDelayMs, sleep } from './retry.js'
import { USER_AGENT } from './version.js'

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE'

/** Options of a single call. */
export interface CallOptions {
  /**
   * Aborts this call (as well as the client's own `signal`).
   * @default undefined
   */
  readonly signal?: AbortSignal
  /**
   * Overrides the client's `timeoutMs` for each attempt of this call.
   * @default the client's `timeoutMs`
   */
  readonly timeoutMs?: number
  /**
   * Overrides the client's `deadlineMs` for this call.
   * @default the client's `deadlineMs`
   */
  readonly deadlineMs?: number
  /**
   * Extra request headers of this call (e.g. a tracing header). They cannot replace the ones
   * the client owns: `X-Api-Key`, `Idempotency-Key`, `Content-Type`, `Accept`.
   * @default undefined
   */
  readonly headers?: Readonly<Record<string, string>>
}

/** Options of a call that changes something (POST, DELETE), which carries an idempotency key. */
export interface MutationOptions extends CallOptions {
  /**
   * The `Idempotency-Key` of this operation: a UUID in one of the four forms the server
   * accepts. Sent unchanged on every attempt and never replaced.
   * @default a fresh random (v4) UUID per call
   */
  readonly idempotencyKey?: string
  /**
   * A stable name of this logical operation, chosen by the caller, under which the client's
   * `keyStore` keeps the key until the operation got a definitive answer. Calling again with
   * the same id, even from a new process, reuses the saved key.
   * @default undefined
   */
  readonly operationId?: string
}

export interface ApiRequest {
  /**
   * In any case (`'post'` is sent as `POST`). POST and DELETE carry a key; GET, HEAD, OPTIONS
   * and PUT are retried without one; any other method is sent once, never retried.
   */
  readonly method: HttpMethod
  /** Starts with `/v1/`; path segments already encoded. */
  readonly path: string
  readonly query?: Readonly<Record<string, string | number | undefined>>
  readonly body?: unknown
  /** Turns a success body into a value; JSON.parse when omitted. */
  readonly parse?: (bodyText: string) => unknown
}

/** A success, with what the caller may want to know beyond the body. */
export interface ApiResponse<T> extends ResponseMetadata {
  readonly data: T
}

/**
 * Headers only the client sets: a caller's value would break a key or the fingerprint, or
 * (`User-Agent`) the promise that every request names the client.
 */
const OWN_HEADERS = new Set([
  'x-api-key',
  'idempotency-key',
  'content-type',
  'accept',
  'content-length',
  'user-agent',
])

/**
 * Headers fetch refuses to send: set, every attempt would fail before leaving the process, and
 * the failure would look like a lost connection, retried until the attempts run out.
 */
const UNSENDABLE_HEADERS = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'expect',
])

function callHeaders(given: unknown): Record<string, string> {
  if (given === undefined) return {}
  if (typeof given !== 'object' || given === null)
    throw new TypeError('Expected `headers` to be an object of header names and string values.')
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(given)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name))
      throw new TypeError(`Expected \`headers\` to have valid header names, got "${name}".`)
    if (OWN_HEADERS.has(name.toLowerCase()))
      throw new TypeError(`\`headers\` cannot set ${name}: the client sets it.`)
    if (UNSENDABLE_HEADERS.has(name.toLowerCase()))
      throw new TypeError(`\`headers\` cannot set ${name}: fetch does not send it.`)
    if (typeof value !== 'string' || !isHeaderValue(value))
      throw new TypeError(
        `Expected \`headers.${name}\` to be a string of Latin-1 characters without line breaks or NUL.`,
      )
    headers[name.toLowerCase()] = value
  }
  return headers
}

/**
 * Runs one logical call: sends it, retries what is safe to retry, and answers the result or
 * throws a typed error.
 *
 * Safety rests on one rule: a POST or DELETE gets its key before the first attempt and keeps
 * it for every attempt, so whatever happened to an earlier attempt (lost response, reset,
 * timeout), the server either runs the operation once or replays what it answered.
 */
export async function sendWithRetries<T>(
  options: ResolvedClientOptions,
  request: ApiRequest,
  call: MutationOptions = {},
): Promise<ApiResponse<T>> {
  // Checked first: a bad option must fail before a key is saved or anything is sent.
  const extraHeaders = callHeaders(call.headers)
  const timeoutMs = resolveCallDuration('timeoutMs', call.timeoutMs, options.timeoutMs)
  const deadlineMs = resolveCallDuration('deadlineMs', call.deadlineMs, options.deadlineMs)
  const deadlineAtMs = Date.now() + deadlineMs
  const signal = combineSignals(options.signal, call.signal)
  const method = normalizeMethod(request.method)
  const mutation = method === 'POST' || method === 'DELETE'
  // A repeat must not run anything twice: idempotent methods may repeat as they are, POST and
  // DELETE because they carry the key. Any other method (PATCH: the API has none, and the
  // server ignores its key) could run twice, so it is sent once.
  const maxAttempts = mutation || IDEMPOTENT_METHODS.has(method) ? options.retry.maxAttempts : 1
  const operationId = mutation ? call.operationId : undefined
  // Serialised once, and before a key is saved (a body that cannot be serialised is a bad
  // option): every attempt must send the same bytes, or the server's fingerprint would differ
  // and the retry would get the mismatch 409.
  const body = request.body === undefined ? undefined : stringifyBody(request.body)
  const resolved = mutation ? await resolveKey(options, call) : undefined
  const idempotencyKey = resolved?.key

  const url = buildUrl(options.baseUrl, request.path, request.query)
  const headers: Record<string, string> = {
    ...extraHeaders,
    'user-agent': USER_AGENT,
    accept: 'application/json',
    'x-api-key': options.apiKey,
  }
  if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey
  if (body !== undefined) headers['content-type'] = 'application/json'

  /**
   * The operation has its answer: the saved key has done its job. Forgetting it is tidying
   * only (a key kept is reused by the next call with the id, which then gets the replay), so
   * a store that fails to forget does not turn the answer into an error.
   */
  const settle = async (): Promise<void> => {
    if (operationId !== undefined)
      await options.keyStore?.delete(operationId).catch(() => undefined)
  }
  // Whether an attempt of this operation may have reached the server with no answer telling
  // what became of it: an earlier process's (the key was saved for the id), or an earlier
  // attempt of this call. An answer that comes before the claim (a 401 from an expired API
  // key, a proxy's 403) says nothing about that attempt, so the key must stay for the next
  // call: forgetting it would mint a new key and could run the operation twice.
  let mayHaveRun = resolved?.fromStore === true

  let lastError: AnyTicksupplyError | undefined
  for (let attempt = 1; ; attempt++) {
    const remainingMs = deadlineAtMs - Date.now()
    if (remainingMs <= 0) throw lastError ?? new TimeoutError(deadlineMs)
    const outcome = await attemptOnce(
      options,
      body === undefined ? { url, method, headers } : { url, method, headers, body },
      Math.min(timeoutMs, remainingMs),
      signal,
    )
    if (outcome.response !== undefined) {
      const { response } = outcome
      if (response.status >= 200 && response.status < 300) {
        // Settled before parsing: a 2xx means the operation ran, and a retry with the same
        // key would only replay this same body, parseable or not.
        await settle()
        const data = parseSuccess(response, request.parse) as T
        return {
          data,
          status: response.status,
          requestId: response.headers.get('x-request-id') ?? undefined,
          replayed: response.headers.get('idempotent-replayed') === 'true',
          originalRequestId: response.headers.get('original-request') ?? undefined,
          attempts: attempt,
          idempotencyKey,
          rateLimit: readRateLimit(response.headers),
          headers: response.headers,
        }
      }
      const error = createApiError({
        status: response.status,
        bodyText: response.bodyText,
        requestId: response.headers.get('x-request-id') ?? undefined,
        retryAfterMs: parseRetryAfter(response.headers.get('retry-after'), Date.now()),
      }) as AnyTicksupplyError
      if (!error.retryable) {
        // A definitive answer for this key when nothing else of it may have run, or when it
        // is the stored answer itself (a replay).
        if (!mayHaveRun || response.headers.get('idempotent-replayed') === 'true') await settle()
        throw error
      }
      lastError = error
    } else {
      lastError = outcome.error
    }
    mayHaveRun = true
    if (attempt >= maxAttempts) throw lastError
    const delayMs = computeRetryDelayMs(lastError, attempt, options.retry, options.random)
    // Waiting past the deadline only to give up then helps no one: fail now with the cause.
    if (Date.now() + delayMs >= deadlineAtMs) throw lastError
    options.onRetry?.({
      method,
      path: request.path,
      attempt,
      error: lastError,
      delayMs,
      idempotencyKey,
    })
    await sleep(delayMs, signal)
  }
}

type AttemptOutcome =
  | { readonly response: HttpResponse; readonly error?: undefined }
  | { readonly response?: undefined; readonly error: AnyTicksupplyError }

async function attemptOnce(
  options: ResolvedClientOptions,
  request: Parameters<typeof sendRequest>[1],
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<AttemptOutcome> {
  try {
    return { response: await sendRequest(options.fetch, request, timeoutMs, signal) }
  } catch (error) {
    // An abort by the caller is not an answer: it propagates, and a saved key stays saved
    // so that the operation can be resumed.
    if (isTicksupplyError(error) && error.retryable) return { error }
    throw error
  }
}

/** The key of an operation, and whether it was saved for its id before this call. */
interface ResolvedKey {
  readonly key: string
  readonly fromStore: boolean
}

/**
 * Keys being resolved, per key store and operation id: calls made at once with one id share
 * one key (a `get` then `set` each would mint two, and run the operation twice).
 */
const resolving = new WeakMap<KeyStore, Map<string, Promise<ResolvedKey>>>()

/** The key of this operation: the caller's, else the one saved for its id, else a new one. */
async function resolveKey(
  options: ResolvedClientOptions,
  call: MutationOptions,
): Promise<ResolvedKey> {
  const { idempotencyKey, operationId } = call
  if (idempotencyKey !== undefined && !isIdempotencyKey(idempotencyKey)) {
    throw new TypeError(
      `Expected \`idempotencyKey\` to be a UUID (hyphenated, simple, braced or urn:uuid:), got "${idempotencyKey}".`,
    )
  }
  if (operationId === undefined) {
    return { key: idempotencyKey ?? createIdempotencyKey(), fromStore: false }
  }
  if (typeof operationId !== 'string' || operationId === '') {
    throw new TypeError('Expected `operationId` to be a non-empty string.')
  }
  const store = options.keyStore
  if (store === undefined) {
    throw new TypeError('`operationId` needs a `keyStore` in the client options.')
  }
  let pending = resolving.get(store)
  if (pending === undefined)
    resolving.set(store, (pending = new Map<string, Promise<ResolvedKey>>()))
  const earlier = pending.get(operationId)
  if (earlier !== undefined) {
    const shared = await earlier
    if (idempotencyKey !== undefined && idempotencyKey !== shared.key) {
      throw new TypeError(
        `\`idempotencyKey\` differs from the key of operation "${operationId}" already under way.`,
      )
    }
    return { key: shared.key, fromStore: true }
  }
  const resolution = saveKey(store, operationId, idempotencyKey)
  pending.set(operationId, resolution)
  try {
    return await resolution
  } finally {
    pending.delete(operationId)
  }
}

async function saveKey(
  store: KeyStore,
  operationId: string,
  given: string | undefined,
): Promise<ResolvedKey> {
  const saved = await store.get(operationId)
  if (saved !== undefined && !isIdempotencyKey(saved)) {
    throw new TypeError(
      `The key store holds "${saved}" for operation "${operationId}", which is not a UUID: repair or remove it (a new key could run the operation twice).`,
    )
  }
  const key = given ?? saved ?? createIdempotencyKey()
  if (key === saved) return { key, fromStore: true }
  // Saved before the first attempt is sent: if the process dies after sending, the next run
  // must find the key, or it would mint a new one and could run the operation twice. A store
  // that can add without replacing settles a race with another process: the first key wins.
  if (given === undefined && saved === undefined && store.add !== undefined) {
    const kept = await store.add(operationId, key)
    return { key: kept, fromStore: kept !== key }
  }
  await store.set(operationId, key)
  return { key, fromStore: false }
}

function parseSuccess(
  response: HttpResponse,
  parse: ((text: string) => unknown) | undefined,
): unknown {
  if (response.bodyText === '') return undefined
  try {
    return (parse ?? JSON.parse)(response.bodyText)
  } catch (cause) {
    throw new UnexpectedResponseError({
      status: response.status,
      requestId: response.headers.get('x-request-id') ?? undefined,
      message: `HTTP ${String(response.status)} with a body that is not JSON`,
      cause,
    })
  }
}

/** Methods that the HTTP semantics make idempotent (RFC 9110, 9.2.2), retried without a key. */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT'])

/**
 * The method in upper case. Methods are case-sensitive on the wire and fetch upper-cases only
 * some of them, so `'post'` must become `POST` before the key and the retries are decided.
 */
function normalizeMethod(method: unknown): string {
  if (typeof method !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(method)) {
    throw new TypeError(`Expected \`method\` to be an HTTP method, got ${JSON.stringify(method)}.`)
  }
  return method.toUpperCase()
}

function buildUrl(
  baseUrl: string,
  path: string,
  query: Readonly<Record<string, string | number | undefined>> | undefined,
): string {
  const params = new URLSearchParams()
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined) params.append(name, String(value))
  }
  const search = params.toString()
  return `${baseUrl}${path}${search === '' ? '' : `?${search}`}`
}
