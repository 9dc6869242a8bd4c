import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { isIdempotencyHttpError } from '../core/error-response.js'
import type { StoreTransaction } from '../core/store.js'
import type { KeyedExchange } from './idempotency-adapter.js'
import { OPERATION_ANSWER_HEADERS } from './idempotency-adapter.js'

/**
 * A Node response held back until its key's claim is settled: how the Express adapter stores
 * every answer, and the Fastify adapter an answer a hijacked reply writes to `reply.raw`.
 */

/** The exchange a held response settles, and the id its stored response is recorded under. */
export interface HeldExchange {
  readonly exchange: KeyedExchange<StoreTransaction>
  readonly requestId: () => string
}

type WriteCallback = (error?: Error | null) => void

/**
 * Holds the response back until its claim is settled: `writeHead` only records status and
 * headers, `write` and `end` collect the bytes. At `end` (or once the body outgrows what may
 * be stored) the response is stored or its key given back, and only then does anything go out:
 * the bytes captured are the bytes written. If the claim cannot be settled (lost, store down),
 * the error is sent instead of the operation's answer.
 */
export function holdResponse(res: ServerResponse, state: HeldExchange): void {
  const { exchange } = state
  // The functions in place now (Node's, or those of a middleware mounted earlier, such as
  // compression), called with the arguments Node accepts.
  const original = {
    writeHead: res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse,
    write: res.write.bind(res) as (...args: unknown[]) => boolean,
    end: res.end.bind(res) as (...args: unknown[]) => ServerResponse,
    flushHeaders: res.flushHeaders.bind(res),
    destroy: res.destroy.bind(res),
  }
  const chunks: Buffer[] = []
  let size = 0
  let settling: Promise<void> | undefined
  let ended: { callback: (() => void) | undefined } | undefined
  // Until the answer goes out: then the held functions pass every call through, so that a
  // middleware that wrapped them later (compression, response-time) keeps working.
  let holding = true
  // A pipe fed the body (Node's pipe() listens for 'unpipe' on its destination).
  let piped = false
  // The connection the body was being written to, to tell who closed it.
  let socket: ServerResponse['socket'] = null

  // Once a body is being written, or ended, its headers and status count as sent, as they
  // would be without the hold: Node refuses to change headers then, a status set later changes
  // nothing on the wire, and Express's final handler (which reads headersSent) cuts the
  // connection instead of answering an error of its own. Held and open, the response took a
  // res.send after a res.write and sent both bodies under the second's Content-Length, and an
  // error handler's 500 went out with the 201's body.
  let sealed:
    | (Pick<ServerResponse, 'setHeader' | 'appendHeader' | 'removeHeader'> & {
        readonly status: number
        readonly message: string
      })
    | undefined
  const seal = () => {
    if (sealed !== undefined) return
    const status = res.statusCode
    const message = res.statusMessage
    /* eslint-disable @typescript-eslint/unbound-method -- put back as the response's own */
    sealed = {
      setHeader: res.setHeader,
      appendHeader: res.appendHeader,
      removeHeader: res.removeHeader,
      status,
      message,
    }
    /* eslint-enable @typescript-eslint/unbound-method */
    const fixed = (value: unknown) => ({ configurable: true, get: () => value, set: noop })
    Object.defineProperty(res, 'headersSent', fixed(true))
    Object.defineProperty(res, 'statusCode', fixed(status))
    Object.defineProperty(res, 'statusMessage', fixed(message))
    res.setHeader = refuseHeaders
    res.appendHeader = refuseHeaders
    res.removeHeader = refuseHeaders
  }
  const unseal = () => {
    if (sealed === undefined) return
    const { status, message, ...headerMethods } = sealed
    sealed = undefined
    for (const name of ['headersSent', 'statusCode', 'statusMessage']) {
      Reflect.deleteProperty(res, name)
    }
    res.statusCode = status
    res.statusMessage = message
    Object.assign(res, headerMethods)
  }

  const restore = () => {
    holding = false
    unseal()
    // A function wrapped again since (by a middleware mounted later) stays: its wrapper calls
    // the held one, which now passes through.
    if (res.writeHead === heldWriteHead) res.writeHead = original.writeHead
    if (res.write === heldWrite) res.write = original.write as ServerResponse['write']
    if (res.end === heldEnd) res.end = original.end as ServerResponse['end']
    if (res.flushHeaders === heldFlushHeaders) res.flushHeaders = original.flushHeaders
    if (res.destroy === heldDestroy) res.destroy = original.destroy
  }

  const flush = () => {
    restore()
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)
    chunks.length = 0
    if (ended !== undefined) original.end(body, ended.callback)
    // The body outgrew what may be stored: what came so far goes out, the rest passes through.
    else if (body.byteLength > 0) original.write(body)
  }

  const fail = (error: unknown) => {
    if (!isIdempotencyHttpError(error)) {
      // Not the store's refusal (e.g. a storeResponse that threw): the answer goes out as it is,
      // its key given back.
      void exchange.giveUp('threw', res.statusCode)
      flush()
      return
    }
    restore()
    // The operation's answer is not the key's answer: none of its headers about the body or
    // the resource may go out with the error.
    for (const name of OPERATION_ANSWER_HEADERS) res.removeHeader(name)
    const { response } = error
    res.statusCode = response.status
    for (const [name, value] of Object.entries(response.headers)) res.setHeader(name, value)
    original.end(response.body, ended?.callback)
  }

  // Sending threw (a middleware's writeHead wrapper, run only now that the held bytes go out):
  // nothing can be answered on this response any more, and a throw here would reach no handler
  // and end the process. The connection is cut; whatever was stored is the retry's.
  const cutOff = (error: unknown) => {
    restore()
    original.destroy(error instanceof Error ? error : new Error(String(error)))
  }

  const settle = () => {
    if (settling !== undefined) return settling
    // One copy, taken now: the bytes stored are the bytes later sent, whatever the handler does
    // with a buffer it handed end() once end() returns.
    const body = Buffer.concat(chunks)
    chunks.length = 0
    chunks.push(body)
    return (settling = exchange
      .finish(
        exchange.capture(res.statusCode, (name) => res.getHeader(name), body, state.requestId()),
      )
      .then(flush, fail)
      .catch(cutOff))
  }

  // The connection closed while a body was being written. A handler that writes by itself,
  // when its client left (the peer ended or reset the connection), goes on to its end(), whose
  // answer is stored for the retry, as when the client leaves before anything is written. The
  // key is given back when nothing whole can come: a pipe stops there (Node's pipe() and
  // pipeline() stop feeding a closed response and call neither end() nor destroy() on it), and
  // a connection this side closed (Express's final handler cuts it after a throw) has no
  // handler behind it. Listened for only once a body is being written (res.send and res.json
  // end at once), so that other answers pay no listener.
  const onCloseWhileWriting = () => {
    if (ended !== undefined || settling !== undefined) return
    const pipeStopped = piped || res.listenerCount('unpipe') > 0
    const clientLeft = socket !== null && (socket.readableEnded || socket.errored !== null)
    if (!pipeStopped && clientLeft) return
    restore()
    void exchange.giveUp('unfinished', res.statusCode)
  }

  function heldWriteHead(
    this: ServerResponse,
    ...args: [
      number,
      (string | OutgoingHttpHeaders | readonly unknown[])?,
      (OutgoingHttpHeaders | readonly unknown[])?,
    ]
  ): ServerResponse {
    if (!holding) return original.writeHead(...args)
    // As Node answers a writeHead after the headers went out.
    if (sealed !== undefined) refuseHeaders()
    const [status, reason] = args
    let [, , headers] = args
    res.statusCode = status
    if (typeof reason === 'string') res.statusMessage = reason
    else headers = reason
    if (Array.isArray(headers)) {
      // Node's raw form: name, value, name, value.
      for (let i = 0; i + 1 < headers.length; i += 2) {
        res.appendHeader(String(headers[i]), String(headers[i + 1]))
      }
    } else if (headers !== undefined) {
      for (const [name, value] of Object.entries(headers)) {
        if (value !== undefined) res.setHeader(name, value as string | number | readonly string[])
      }
    }
    return res
  }

  function heldWrite(
    this: ServerResponse,
    chunk: unknown,
    encoding?: BufferEncoding | WriteCallback,
    callback?: WriteCallback,
  ): boolean {
    if (!holding) return original.write(chunk, encoding, callback)
    if (typeof encoding === 'function') callback = encoding
    // A copy: the callback below tells the caller it may reuse its buffer, and the bytes are
    // still to be stored and sent.
    const buffer = Buffer.from(toBuffer(chunk, typeof encoding === 'string' ? encoding : undefined))
    if (chunks.length === 0 && sealed === undefined && settling === undefined) {
      piped = res.listenerCount('unpipe') > 0
      socket = res.socket
      res.once('close', onCloseWhileWriting)
      seal()
    }
    chunks.push(buffer)
    size += buffer.byteLength
    if (callback !== undefined) process.nextTick(callback)
    if (size > exchange.maxStoredBodyBytes) void settle()
    return true
  }

  function heldEnd(
    this: ServerResponse,
    chunk?: unknown,
    encoding?: BufferEncoding | (() => void),
    callback?: () => void,
  ): ServerResponse {
    if (!holding) return original.end(chunk, encoding, callback)
    if (ended !== undefined) return res
    if (typeof chunk === 'function') {
      callback = chunk as () => void
      chunk = undefined
    } else if (typeof encoding === 'function') {
      callback = encoding
    }
    if (chunk !== undefined && chunk !== null) {
      chunks.push(toBuffer(chunk, typeof encoding === 'string' ? encoding : undefined))
    }
    ended = { callback }
    seal()
    void settle()
    return res
  }

  // Headers go out with the body, once it is settled.
  function heldFlushHeaders(): void {
    if (!holding) original.flushHeaders()
  }

  // The handler's side gave the response up before ending it (a piped stream that failed,
  // res.destroy()): no answer is coming, so the key is given back. A client that disconnects
  // does not come this way (Node closes the response without destroy()): its operation goes
  // on, and its end() still stores the answer for the retry.
  function heldDestroy(this: ServerResponse, error?: Error): ServerResponse {
    if (!holding) return original.destroy(error)
    restore()
    if (settling === undefined) void exchange.giveUp('unfinished', res.statusCode)
    return original.destroy(error)
  }

  res.writeHead = heldWriteHead
  res.write = heldWrite as ServerResponse['write']
  res.end = heldEnd as ServerResponse['end']
  res.flushHeaders = heldFlushHeaders
  res.destroy = heldDestroy
}

function noop(): void {
  // A status set once the headers count as sent changes nothing, as on the wire.
}

/** What Node throws for a header changed after the headers went out. */
function refuseHeaders(): never {
  throw Object.assign(new Error('Cannot set headers after they are sent to the client'), {
    code: 'ERR_HTTP_HEADERS_SENT',
  })
}

function toBuffer(chunk: unknown, encoding: BufferEncoding | undefined): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, encoding ?? 'utf8')
  if (chunk instanceof Uint8Array)
    return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  throw new TypeError('The response body chunk must be a string, Buffer or Uint8Array.')
}
