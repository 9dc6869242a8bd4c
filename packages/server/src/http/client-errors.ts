import { STATUS_CODES } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { JSON_TYPE, renderError } from './envelope.js'
import { generateRequestId } from './request-id.js'
import { ALWAYS_HEADERS } from './response-headers.js'

/**
 * Answers to requests that never reach a route, each in the error envelope with a request id,
 * `nosniff` and `Connection: close`, as Fastify's own answers are:
 *
 * - bytes that do not parse as HTTP (Node's `clientError`), written straight to the socket;
 * - `CONNECT` (Node's `connect` event; without a listener Node closes the socket silently);
 * - a missing, repeated or malformed `Host`, which RFC 9112 (3.2) says to answer with 400. Node's
 *   own check (`requireHostHeader`) answers an empty 400 instead, so the app turns it off and
 *   checks in its first hooks, see {@link registerHostCheck}.
 */

/** How long a socket we answered may stay half-open for the client to read the answer. */
const LINGER_MS = 2_000

/** Node keeps the response being written on a socket here (it has done so since 0.x). */
type HttpSocket = Duplex & { _httpMessage?: ServerResponse | null }

/** Sockets already answered: a parser in error reports every further chunk again. */
const answered = new WeakSet<Duplex>()

function rawError(status: number, code: string, message: string): string {
  const body = renderError(code, message)
  return [
    `HTTP/1.1 ${String(status)} ${STATUS_CODES[status] ?? ''}`,
    `Date: ${new Date().toUTCString()}`,
    `Content-Type: ${JSON_TYPE}`,
    `Content-Length: ${String(Buffer.byteLength(body))}`,
    `X-Request-Id: ${generateRequestId()}`,
    ...Object.entries(ALWAYS_HEADERS).map(([name, value]) => `${name}: ${value}`),
    'Connection: close',
    '',
    body,
  ].join('\r\n')
}

/** Writes the answer and closes; the socket is destroyed if the client never closes its side. */
function endWith(socket: Duplex, answer: string): void {
  socket.end(answer)
  setTimeout(() => socket.destroy(), LINGER_MS).unref()
}

/**
 * Runs `then` once no response is being written on the socket. Requests pipelined before the bad
 * bytes were parsed and are being answered; their answers go first, in order, or the client
 * would read ours as the answer to one of them. Node hands the socket to the next queued
 * response in its own `finish` listener, which runs before this one.
 */
function whenNoResponseInFlight(socket: HttpSocket, then: () => void): void {
  const inFlight = socket._httpMessage
  if (inFlight === undefined || inFlight === null) {
    then()
    return
  }
  inFlight.once('finish', () => {
    whenNoResponseInFlight(socket, then)
  })
  inFlight.once('close', () => {
    if (!inFlight.writableFinished) socket.destroy()
  })
}

/** Node's `clientError`: a 400 envelope (408 for a request that took too long to arrive). */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (answered.has(socket)) return
  answered.add(socket)
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy()
    return
  }
  const answer =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? rawError(408, 'request_timeout', 'The request took too long to arrive')
      : rawError(
          400,
          'invalid_argument',
          error.code === 'HPE_HEADER_OVERFLOW'
            ? 'Request headers are too large'
            : 'Malformed HTTP request',
        )
  const inFlight = (socket as HttpSocket)._httpMessage
  if (inFlight?.headersSent === false && !inFlight.req.complete) {
    // The bad bytes are in the body of the request being handled (a broken chunk): it can never
    // arrive whole, and its handler would wait for the deadline's 408 and then precede ours. It
    // is answered once, now; its body reader fails when the socket closes, before any claim.
    endWith(socket, answer)
    return
  }
  whenNoResponseInFlight(socket, () => {
    if (socket.writable) endWith(socket, answer)
    else socket.destroy()
  })
}

/** Node's `connect`: this server is no proxy, and says so instead of dropping the connection. */
export function answerConnect(socket: Duplex): void {
  answered.add(socket)
  endWith(
    socket,
    rawError(400, 'invalid_argument', 'CONNECT is not supported: this server is not a proxy'),
  )
}

/**
 * A host name, an IPv4 address or a bracketed IPv6 address, and an optional port. Narrower than
 * RFC 3986's reg-name (no sub-delims, no percent-encoding): download links are built from it
 * when PUBLIC_BASE_URL is unset, and no real host needs more.
 */
const HOST = /^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/

/**
 * One `Host` line with a host in it on every HTTP/1.1 request, at most one on HTTP/1.0 (which
 * may leave it out): otherwise 400, and the connection is closed. Register it first, so that a
 * bad Host is answered before anything else looks at the request.
 */
export function registerHostCheck(app: FastifyInstance): void {
  app.server.on('connect', (_request, socket: Duplex) => {
    answerConnect(socket)
  })
  // An `Expect` other than 100-continue (an empty one included): Node answers a bare 417 of its
  // own unless someone listens. RFC 9110 (10.1.1) lets a server ignore an expectation it does
  // not know, so the request goes on as if it had none, and is answered as any other.
  app.server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    app.server.emit('request', request, response)
  })
  app.addHook('onRequest', async (request, reply) => {
    const raw = request.raw.rawHeaders
    const hosts: string[] = []
    for (let index = 0; index < raw.length; index += 2) {
      if (raw[index]?.toLowerCase() === 'host') hosts.push(raw[index + 1] ?? '')
    }
    const required = request.raw.httpVersion !== '1.0'
    const [host] = hosts
    const valid =
      hosts.length === 1 && host !== undefined ? HOST.test(host) : hosts.length === 0 && !required
    if (valid) return undefined
    return reply
      .code(400)
      .header('connection', 'close')
      .type(JSON_TYPE)
      .send(
        renderError(
          'invalid_argument',
          'A request needs exactly one Host header with a host name, e.g. Host: api.example.com',
        ),
      )
  })
}
