import { EventEmitter } from 'node:events'
import { connect, createServer } from 'node:net'
import type { Socket } from 'node:net'

/**
 * What the proxy does to one request:
 * - `pass`: forwards it and relays the answer;
 * - `reset-before`: resets the connection before the request reaches the server;
 * - `drop-response`: forwards it, lets the server answer, then resets the connection
 *   instead of relaying the answer (the response is lost, the operation ran);
 * - `delay`: waits `delayMs`, then forwards it;
 * - `respond-503`: answers `503 unavailable` itself; the server never sees it;
 * - `hold-request`: keeps the request and sends nothing anywhere, until the client gives up;
 * - `hold-response`: forwards it, and keeps the server's answer from the client, until the
 *   client gives up.
 */
export type Fault =
  | 'pass'
  | 'reset-before'
  | 'drop-response'
  | 'delay'
  | 'respond-503'
  | 'hold-request'
  | 'hold-response'

export interface ProxiedRequest {
  readonly method: string
  readonly path: string
  readonly idempotencyKey: string | undefined
  readonly fault: Fault
  /** The server's status, when the request reached it and it answered. */
  upstreamStatus?: number
  /** Whether the server's answer was a replay (`Idempotent-Replayed: true`). */
  upstreamReplayed?: boolean
  /** The server's body, when it answered. */
  upstreamBody?: string
}

export interface FaultProxyOptions {
  readonly targetPort: number
  /** Picks the fault of each request, in the order the requests arrive. */
  readonly chooseFault: (request: { method: string; path: string; index: number }) => Fault
  /** How long `delay` waits. */
  readonly delayMs?: number
}

export interface FaultProxy {
  readonly url: string
  /** Every request that arrived, in order. */
  readonly requests: readonly ProxiedRequest[]
  /** How many requests got each fault. */
  count(fault: Fault): number
  /** Emits `held` with the request once a hold-request or hold-response fault holds it. */
  readonly events: EventEmitter<{ held: [ProxiedRequest] }>
  close(): Promise<void>
}

const UNAVAILABLE_BODY = JSON.stringify({
  error: { code: 'unavailable', message: 'Injected by the test proxy' },
})

/**
 * A TCP proxy on 127.0.0.1 that injects faults into HTTP/1.1 exchanges. It reads each request
 * whole (head and Content-Length body), decides its fault, and forwards it to the server on a
 * fresh connection with `Connection: close`, so that one client connection carries exactly
 * one exchange and a fault never spills over to another request.
 */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const requests: ProxiedRequest[] = []
  const events = new EventEmitter<{ held: [ProxiedRequest] }>()
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()

  const server = createServer((client) => {
    sockets.add(client)
    client.on('close', () => sockets.delete(client))
    client.on('error', () => {
      // The client went away (often on purpose: a killed child, an aborted fetch).
    })
    let buffered = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk])
      const parsed = parseRequest(buffered)
      if (parsed === undefined) return
      client.off('data', onData)
      const record: ProxiedRequest = {
        method: parsed.method,
        path: parsed.path,
        idempotencyKey: parsed.headers.get('idempotency-key') ?? undefined,
        fault: options.chooseFault({
          method: parsed.method,
          path: parsed.path,
          index: requests.length,
        }),
      }
      requests.push(record)
      handle(client, record, parsed.forwarded)
    }
    client.on('data', onData)
  })

  function handle(client: Socket, record: ProxiedRequest, forwarded: Buffer): void {
    switch (record.fault) {
      case 'reset-before':
        client.resetAndDestroy()
        return
      case 'respond-503':
        client.end(
          `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n` +
            `content-length: ${String(Buffer.byteLength(UNAVAILABLE_BODY))}\r\n` +
            `x-request-id: req_0000000000000000\r\nconnection: close\r\n\r\n${UNAVAILABLE_BODY}`,
        )
        return
      case 'hold-request':
        events.emit('held', record)
        return
      case 'delay': {
        const timer = setTimeout(() => {
          timers.delete(timer)
          forward(client, record, forwarded)
        }, options.delayMs ?? 50)
        timers.add(timer)
        return
      }
      case 'pass':
      case 'drop-response':
      case 'hold-response':
        forward(client, record, forwarded)
        return
    }
  }

  function forward(client: Socket, record: ProxiedRequest, forwarded: Buffer): void {
    if (client.destroyed) return
    const upstream = connect(options.targetPort, '127.0.0.1')
    sockets.add(upstream)
    upstream.on('close', () => sockets.delete(upstream))
    const chunks: Buffer[] = []
    upstream.on('data', (chunk: Buffer) => chunks.push(chunk))
    upstream.on('error', () => {
      client.destroy()
    })
    upstream.on('end', () => {
      const response = Buffer.concat(chunks)
      const head = parseResponseHead(response)
      if (head !== undefined) {
        record.upstreamStatus = head.status
        record.upstreamReplayed = head.headers.get('idempotent-replayed') === 'true'
        record.upstreamBody = head.body
      }
      if (record.fault === 'drop-response') {
        client.resetAndDestroy()
      } else if (record.fault === 'hold-response') {
        events.emit('held', record)
      } else {
        client.end(response)
      }
    })
    upstream.write(forwarded)
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (typeof address !== 'object' || address === null) throw new Error('proxy has no address')

  return {
    url: `http://127.0.0.1:${String(address.port)}`,
    requests,
    count: (fault) => requests.filter((request) => request.fault === fault).length,
    events,
    close() {
      for (const timer of timers) clearTimeout(timer)
      for (const socket of sockets) socket.destroy()
      return new Promise((resolve) => {
        server.close(() => {
          resolve()
        })
      })
    },
  }
}

interface ParsedRequest {
  readonly method: string
  readonly path: string
  readonly headers: Headers
  /** The request as sent on, with `Connection: close`. */
  readonly forwarded: Buffer
}

/** The whole request once it has arrived (head and Content-Length body), else undefined. */
function parseRequest(buffered: Buffer): ParsedRequest | undefined {
  const headEnd = buffered.indexOf('\r\n\r\n')
  if (headEnd < 0) return undefined
  const lines = buffered.subarray(0, headEnd).toString('latin1').split('\r\n')
  const [method = '', path = ''] = (lines[0] ?? '').split(' ')
  const headers = new Headers()
  const kept: string[] = []
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    headers.append(name, line.slice(colon + 1).trim())
    if (name !== 'connection' && name !== 'keep-alive') kept.push(line)
  }
  const length = Number(headers.get('content-length') ?? '0')
  const body = buffered.subarray(headEnd + 4)
  if (body.length < length) return undefined
  const head = [lines[0] ?? '', ...kept, 'connection: close', '', ''].join('\r\n')
  return {
    method,
    path,
    headers,
    forwarded: Buffer.concat([Buffer.from(head, 'latin1'), body.subarray(0, length)]),
  }
}

function parseResponseHead(
  response: Buffer,
): { status: number; headers: Headers; body: string } | undefined {
  const headEnd = response.indexOf('\r\n\r\n')
  if (headEnd < 0) return undefined
  const lines = response.subarray(0, headEnd).toString('latin1').split('\r\n')
  const status = Number((lines[0] ?? '').split(' ')[1])
  const headers = new Headers()
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    headers.append(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  return { status, headers, body: response.subarray(headEnd + 4).toString('utf8') }
}
