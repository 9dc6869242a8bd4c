import { createServer } from 'node:http'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

export interface RecordedRequest {
  readonly method: string
  /** Path and query, as sent. */
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

export type TestHandler = (
  request: RecordedRequest,
  response: ServerResponse,
  /** 0 for the first request the server got. */
  index: number,
) => void

export interface TestHttpServer {
  readonly url: string
  /** Every request, in arrival order, recorded before the handler ran. */
  readonly requests: readonly RecordedRequest[]
  close(): Promise<void>
}

/**
 * A real HTTP server on 127.0.0.1 whose handler a test writes, to drive the client through
 * exact status sequences while counting what it sends. Real HTTP, not a mock of fetch.
 */
export async function startTestHttpServer(handler: TestHandler): Promise<TestHttpServer> {
  const requests: RecordedRequest[] = []
  const sockets = new Set<Socket>()
  const server = createServer((incoming: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = []
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk))
    incoming.on('end', () => {
      const request: RecordedRequest = {
        method: incoming.method ?? '',
        url: incoming.url ?? '',
        headers: incoming.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      }
      requests.push(request)
      handler(request, response, requests.length - 1)
    })
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (typeof address !== 'object' || address === null) throw new Error('server has no address')
  return {
    url: `http://127.0.0.1:${String(address.port)}`,
    requests,
    close() {
      for (const socket of sockets) socket.destroy()
      return new Promise((resolve) => {
        server.close(() => {
          resolve()
        })
      })
    },
  }
}

/** Answers JSON with the given status (no body for 204), and an `X-Request-Id`. */
export function sendJson(
  response: ServerResponse,
  status: number,
  body?: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = body === undefined ? '' : JSON.stringify(body)
  response.writeHead(status, {
    'content-type': 'application/json',
    'x-request-id': `req_${Math.floor(Math.random() * 2 ** 52)
      .toString(16)
      .padStart(16, '0')}`,
    ...headers,
  })
  response.end(text)
}

/** The API's error envelope. */
export function sendError(
  response: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  sendJson(response, status, { error: { code, message } }, headers)
}
