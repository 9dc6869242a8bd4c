import { connect } from 'node:net'
import type { Socket } from 'node:net'

/** An answer as read off the wire. */
export interface RawResponse {
  readonly status: number
  /** Header names lower-cased; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>
  readonly body: Buffer
}

export type Exchange =
  | { readonly kind: 'response'; readonly response: RawResponse }
  /** The connection ended (or was reset) before a whole answer arrived. */
  | { readonly kind: 'closed'; readonly received: number }
  | { readonly kind: 'timeout' }

/**
 * One connection to the server that sends one request at a time and reads its answer
 * (Content-Length, chunked, or until close; 1xx answers skipped). For well-formed requests it
 * is kept open across requests, as clients do.
 */
export class RawConnection {
  readonly #port: number
  readonly #timeoutMs: number
  #socket: Socket | undefined
  #buffer = Buffer.alloc(0)
  #ended = false
  #wake: (() => void) | undefined

  constructor(port: number, timeoutMs: number) {
    this.#port = port
    this.#timeoutMs = timeoutMs
  }

  /** Sends `bytes` and reads one answer; `fresh`: on a new connection, closed afterwards. */
  async exchange(bytes: Buffer, method: string, fresh: boolean): Promise<Exchange> {
    if (fresh || this.#socket === undefined || this.#ended) await this.#open()
    const socket = this.#socket
    if (socket === undefined) return { kind: 'closed', received: 0 }
    socket.write(bytes)
    const deadline = Date.now() + this.#timeoutMs
    let result: Exchange | undefined
    for (;;) {
      const parsed = parseResponse(this.#buffer, method, this.#ended)
      if (parsed !== undefined) {
        this.#buffer = this.#buffer.subarray(parsed.consumed)
        if (parsed.response.status >= 100 && parsed.response.status < 200) continue
        result = { kind: 'response', response: parsed.response }
        const closing = (parsed.response.headers['connection'] ?? '')
          .toLowerCase()
          .includes('close')
        if (closing || fresh) this.close()
        break
      }
      if (this.#ended) {
        result = { kind: 'closed', received: this.#buffer.length }
        this.close()
        break
      }
      const remaining = deadline - Date.now()
      if (remaining <= 0) {
        result = { kind: 'timeout' }
        this.close()
        break
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining)
        this.#wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.#wake = undefined
    }
    return result
  }

  close(): void {
    this.#socket?.destroy()
    this.#socket = undefined
    this.#ended = true
  }

  async #open(): Promise<void> {
    this.close()
    this.#buffer = Buffer.alloc(0)
    this.#ended = false
    const socket = connect(this.#port, '127.0.0.1')
    socket.setNoDelay(true)
    this.#socket = socket
    const onEnd = () => {
      if (this.#socket === socket) this.#ended = true
      this.#wake?.()
    }
    socket.on('data', (chunk: Buffer) => {
      if (this.#socket !== socket) return
      this.#buffer = Buffer.concat([this.#buffer, chunk])
      this.#wake?.()
    })
    socket.on('end', onEnd)
    socket.on('close', onEnd)
    socket.on('error', onEnd)
    await new Promise<void>((resolve) => {
      socket.once('connect', resolve)
      socket.once('error', () => {
        resolve()
      })
    })
  }
}

/** One whole answer at the front of `buffer`, or undefined if more bytes are needed. */
export function parseResponse(
  buffer: Buffer,
  method: string,
  ended: boolean,
): { response: RawResponse; consumed: number } | undefined {
  const headEnd = buffer.indexOf('\r\n\r\n')
  if (headEnd === -1) return undefined
  const [statusLine = '', ...lines] = buffer.subarray(0, headEnd).toString('latin1').split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0)
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  const start = headEnd + 4
  const noBody =
    method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)
  if (noBody) return { response: { status, headers, body: Buffer.alloc(0) }, consumed: start }
  if ((headers['transfer-encoding'] ?? '').toLowerCase().includes('chunked')) {
    const chunks: Buffer[] = []
    let offset = start
    for (;;) {
      const lineEnd = buffer.indexOf('\r\n', offset)
      if (lineEnd === -1) return undefined
      const size = Number.parseInt(buffer.subarray(offset, lineEnd).toString('latin1'), 16)
      if (!Number.isFinite(size)) return undefined
      const dataStart = lineEnd + 2
      if (size === 0) {
        const trailerEnd = buffer.indexOf('\r\n\r\n', lineEnd)
        const end =
          buffer.subarray(lineEnd, lineEnd + 4).toString('latin1') === '\r\n\r\n'
            ? lineEnd + 4
            : trailerEnd + 4
        if (trailerEnd === -1 && end !== lineEnd + 4) return undefined
        return { response: { status, headers, body: Buffer.concat(chunks) }, consumed: end }
      }
      if (buffer.length < dataStart + size + 2) return undefined
      chunks.push(buffer.subarray(dataStart, dataStart + size))
      offset = dataStart + size + 2
    }
  }
  const length = headers['content-length']
  if (length !== undefined) {
    const size = Number(length)
    if (buffer.length < start + size) return undefined
    return {
      response: { status, headers, body: buffer.subarray(start, start + size) },
      consumed: start + size,
    }
  }
  // Neither: the body runs to the end of the connection.
  if (!ended) return undefined
  return { response: { status, headers, body: buffer.subarray(start) }, consumed: buffer.length }
}
