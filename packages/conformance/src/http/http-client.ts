import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { setTimeout as sleep } from 'node:timers/promises'

/** One header line: a name and its value. A name may appear on several lines. */
export type HeaderLine = readonly [name: string, value: string]

export interface HttpRequest {
  readonly method: string
  /** Path and query exactly as they go on the request line, starting with `/`. */
  readonly path: string
  /** Header lines; a repeated name is sent as separate lines, in this order. */
  readonly headers?: readonly HeaderLine[]
  /** The body's exact bytes; sent with a Content-Length. */
  readonly body?: string | Uint8Array
}

export interface HttpReply {
  readonly status: number
  /** Every header line of the answer, by lower-case name, in the order received. */
  readonly headers: ReadonlyMap<string, readonly string[]>
  /** The body's exact bytes. */
  readonly body: Buffer
  readonly text: string
  /** The header's value (its lines joined with ", " if it came more than once), or undefined. */
  header(name: string): string | undefined
}

export interface HttpClientOptions {
  /** Where the server is, e.g. `http://127.0.0.1:8080`; a path in it prefixes every request. */
  readonly baseUrl: string
  /** Per request, from writing it to the end of the answer. */
  readonly timeoutMs: number
  /** At most this many connections at once: the suite's bound on concurrent load. */
  readonly maxSockets: number
  /**
   * How long the client may wait out `429` answers in all, honouring `Retry-After`. A `429` uses
   * up no key (the contract's order of checks), so the same request is simply sent again.
   */
  readonly rateLimitBudgetMs: number
}

export interface HttpClient {
  send(request: HttpRequest): Promise<HttpReply>
  /**
   * Writes the request, then destroys the connection `afterMs` later without reading the
   * answer: a client that went away. Resolves once the connection is gone.
   */
  abandon(request: HttpRequest, afterMs: number): Promise<void>
  /** How many requests went out, retries after a 429 included. */
  readonly sent: number
  close(): void
}

export class HttpError extends Error {
  override readonly name = 'HttpError'
  readonly code = 'http_failed'
}

/**
 * A plain HTTP/1.1 client on node:http: the suite needs exact control over header lines
 * (repeated or empty `Idempotency-Key` lines, which fetch would merge or refuse) and the exact
 * bytes of every answer, to compare a replay with its original byte for byte.
 */
export function createHttpClient(options: HttpClientOptions): HttpClient {
  const base = new URL(options.baseUrl)
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new TypeError(`the base URL must be http: or https:, got ${base.protocol}`)
  }
  const prefix = base.pathname.replace(/\/+$/, '')
  const secure = base.protocol === 'https:'
  const agent = secure
    ? new HttpsAgent({ keepAlive: true, maxSockets: options.maxSockets })
    : new HttpAgent({ keepAlive: true, maxSockets: options.maxSockets })
  let sent = 0
  let rateLimitWaitedMs = 0

  function open(request: HttpRequest, dedicated: boolean) {
    const headers: OutgoingHttpHeaders = {}
    for (const [name, value] of request.headers ?? []) {
      const key = name.toLowerCase()
      const previous = headers[key]
      if (previous === undefined) headers[key] = value
      else headers[key] = [...[previous].flat().map(String), value]
    }
    if (request.body !== undefined) headers['content-length'] = Buffer.byteLength(request.body)
    sent++
    const make = secure ? httpsRequest : httpRequest
    return make({
      protocol: base.protocol,
      host: base.hostname,
      port: base.port === '' ? undefined : Number(base.port),
      method: request.method,
      path: prefix + request.path,
      headers,
      // A request that will be cut off must not take a pooled connection down with it.
      agent: dedicated ? false : agent,
    })
  }

  function sendOnce(request: HttpRequest): Promise<HttpReply> {
    return new Promise((resolve, reject) => {
      const outgoing = open(request, false)
      const timer = setTimeout(() => {
        outgoing.destroy(
          new HttpError(
            `${request.method} ${request.path}: no complete answer in ${String(options.timeoutMs)} ms`,
          ),
        )
      }, options.timeoutMs)
      outgoing.on('error', (error: Error) => {
        clearTimeout(timer)
        reject(
          error instanceof HttpError
            ? error
            : new HttpError(`${request.method} ${request.path}: ${error.message}`),
        )
      })
      outgoing.on('response', (incoming: IncomingMessage) => {
        const chunks: Buffer[] = []
        incoming.on('data', (chunk: Buffer) => chunks.push(chunk))
        incoming.on('error', (error: Error) => {
          clearTimeout(timer)
          reject(new HttpError(`${request.method} ${request.path}: ${error.message}`))
        })
        incoming.on('end', () => {
          clearTimeout(timer)
          resolve(toReply(incoming, Buffer.concat(chunks)))
        })
      })
      outgoing.end(request.body)
    })
  }

  return {
    async send(request) {
      for (;;) {
        const reply = await sendOnce(request)
        if (reply.status !== 429) return reply
        const retryAfterMs = Number(reply.header('retry-after') ?? '1') * 1000
        const waitMs = Number.isFinite(retryAfterMs) && retryAfterMs > 0 ? retryAfterMs : 1000
        if (rateLimitWaitedMs + waitMs > options.rateLimitBudgetMs) return reply
        rateLimitWaitedMs += waitMs
        await sleep(waitMs)
      }
    },
    abandon(request, afterMs) {
      return new Promise((resolve) => {
        const outgoing = open(request, true)
        outgoing.on('error', () => {
          // Expected: we destroy the connection ourselves.
        })
        outgoing.on('close', () => {
          resolve()
        })
        outgoing.end(request.body, () => {
          setTimeout(() => outgoing.destroy(), afterMs)
        })
      })
    },
    get sent() {
      return sent
    },
    close() {
      agent.destroy()
    },
  }
}

function toReply(incoming: IncomingMessage, body: Buffer): HttpReply {
  const headers = new Map<string, string[]>()
  const raw = incoming.rawHeaders
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] ?? '').toLowerCase()
    const values = headers.get(name) ?? []
    values.push(raw[i + 1] ?? '')
    headers.set(name, values)
  }
  const text = body.toString('utf8')
  return {
    status: incoming.statusCode ?? 0,
    headers,
    body,
    text,
    header: (name) => headers.get(name.toLowerCase())?.join(', '),
  }
}
