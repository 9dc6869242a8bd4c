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
    writeHead: res.writeHead.bind(res),
    write: res.write.bind(res) as (chunk: Uint8Array) => boolean,
    end: res.end.bind(res) as (chunk: Uint8Array | string, callback?: () => void) => void,
    flushHeaders: res.flushHeaders.bind(res),
    destroy: res.destroy.bind(res),
  }
  const chunks: Buffer[] = []
  let size = 0
  let settling: Promise<void> | undefined
  let ended: { callback: (() => void) | undefined } | undefined

  // Once a body is being written its headers count as sent, as they would be without the
  // hold: Node refuses to change them then, and Express's final handler (which reads
  // headersSent) cuts the connection instead of appending its error page to the body. Held and
  // open, the response took a res.send after a res.write, and sent both bodies under the
  // second's Content-Length.
  let unsealed: Pick<ServerResponse, 'setHeader' | 'appendHeader' | 'removeHeader'> | undefined
  const seal = () => {
    /* eslint-disable @typescript-eslint/unbound-method -- put back as the response's own */
    unsealed = {
      setHeader: res.setHeader,
      appendHeader: res.appendHeader,
      removeHeader: res.removeHeader,
    }
    /* eslint-enable @typescript-eslint/unbound-method */
    Object.defineProperty(res, 'headersSent', { configurable: true, get: () => true })
    res.setHeader = refuseHeaders
    res.appendHeader = refuseHeaders
    res.removeHeader = refuseHeaders
  }

  const restore = () => {
    res.writeHead = original.writeHead
    res.write = original.write as ServerResponse['write']
    res.end = original.end as ServerResponse['end']
    res.flushHeaders = original.flushHeaders
    res.destroy = original.destroy
    if (unsealed !== undefined) {
      Reflect.deleteProperty(res, 'headersSent')
      Object.assign(res, unsealed)
      unsealed = undefined
    }
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
      .then(flush, fail))
  }

  // A body being written when the connection closed will not be finished by a pipe: Node's
  // pipe() and pipeline() stop feeding a closed response, and never call end() or destroy() on
  // it. Nothing whole can be stored, so the key is given back. Listened for only once a body is
  // being written (res.send and res.json end at once), so that other answers pay no listener.
  const onCloseWhileWriting = () => {
    if (ended !== undefined || settling !== undefined) return
    restore()
    void exchange.giveUp('unfinished', res.statusCode)
  }

  res.writeHead = function heldWriteHead(
    this: ServerResponse,
    status: number,
    reason?: string | OutgoingHttpHeaders | readonly unknown[],
    headers?: OutgoingHttpHeaders | readonly unknown[],
  ) {
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

  res.write = function heldWrite(
    this: ServerResponse,
    chunk: unknown,
    encoding?: BufferEncoding | WriteCallback,
    callback?: WriteCallback,
  ): boolean {
    if (typeof encoding === 'function') callback = encoding
    // A copy: the callback below tells the caller it may reuse its buffer, and the bytes are
    // still to be stored and sent.
    const buffer = Buffer.from(toBuffer(chunk, typeof encoding === 'string' ? encoding : undefined))
    if (chunks.length === 0 && unsealed === undefined && settling === undefined) {
      res.once('close', onCloseWhileWriting)
      seal()
    }
    chunks.push(buffer)
    size += buffer.byteLength
    if (callback !== undefined) process.nextTick(callback)
    if (size > exchange.maxStoredBodyBytes) void settle()
    return true
  } as ServerResponse['write']

  res.end = function heldEnd(
    this: ServerResponse,
    chunk?: unknown,
    encoding?: BufferEncoding | (() => void),
    callback?: () => void,
  ): ServerResponse {
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
    void settle()
    return res
  } as ServerResponse['end']

  // Headers go out with the body, once it is settled.
  res.flushHeaders = () => undefined

  // The handler's side gave the response up before ending it (a piped stream that failed,
  // res.destroy()): no answer is coming, so the key is given back. A client that disconnects
  // does not come this way (Node closes the response without destroy()): its operation goes
  // on, and its end() still stores the answer for the retry.
  res.destroy = function heldDestroy(this: ServerResponse, error?: Error) {
    restore()
    if (settling === undefined) void exchange.giveUp('unfinished', res.statusCode)
    return original.destroy(error)
  }
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
