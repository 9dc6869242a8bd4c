import { describe, expect, it } from 'vitest'
import {
  FingerprintMismatchError,
  IdempotencyHttpError,
  IdempotencyKeyInvalidError,
  LeaseLostError,
  RequestInProgressError,
  StoreUnavailableError,
  WaitAbortedError,
  renderEnvelopeError,
  renderProblemDetails,
  toIdempotencyErrorResponse,
} from '@ticksupply/idempotency'
import type { AnyIdempotencyError } from '@ticksupply/idempotency'

/** The frames of a V8 stack trace: its lines after the first ("Name: message"). */
const framesOf = (error: Error): string[] =>
  (error.stack ?? '').split('\n').filter((line) => line.trimStart().startsWith('at '))

const refusals: [string, () => AnyIdempotencyError][] = [
  ['a bad key', () => new IdempotencyKeyInvalidError('not a UUID')],
  ['a reused key', () => new FingerprintMismatchError()],
  ['a wait that ran out', () => new RequestInProgressError()],
  ['a client that left', () => new WaitAbortedError()],
]
const faults: [string, () => AnyIdempotencyError][] = [
  ['a lost lease', () => new LeaseLostError()],
  ['a store down', () => new StoreUnavailableError({ cause: new Error('ECONNREFUSED') })],
]

describe('engine errors', () => {
  it.each(refusals)('%s is an answer to the request, made without a stack trace', (_, make) => {
    const error = make()
    expect(framesOf(error)).toEqual([])
    expect(error.message.length).toBeGreaterThan(0)
  })

  it.each(faults)('%s is a fault and keeps its stack trace', (_, make) => {
    expect(framesOf(make()).length).toBeGreaterThan(0)
  })

  it('gives the stack trace limit back, so that errors made after a refusal keep theirs', () => {
    const before = Error.stackTraceLimit
    for (const [, make] of refusals) make()
    new IdempotencyHttpError(new FingerprintMismatchError())
    expect(Error.stackTraceLimit).toBe(before)
    expect(framesOf(new Error('after')).length).toBeGreaterThan(0)
  })

  it("wraps into an HTTP error whose trace is its cause's", () => {
    const cause = new StoreUnavailableError({ cause: new Error('ECONNREFUSED') })
    const error = new IdempotencyHttpError(cause)
    expect(framesOf(error)).toEqual([])
    expect(error.cause).toBe(cause)
    expect(framesOf(error.cause).length).toBeGreaterThan(0)
    expect(error.statusCode).toBe(503)
  })
})

describe('error answers', () => {
  it('answers each code with one frozen answer, whatever error object carries it', () => {
    for (const [, make] of [...refusals, ...faults]) {
      const first = toIdempotencyErrorResponse(make())
      expect(toIdempotencyErrorResponse(make())).toBe(first)
      expect(Object.isFrozen(first)).toBe(true)
      expect(Object.isFrozen(first.headers)).toBe(true)
    }
    // A missing key and a malformed one are both 400s, with their own messages.
    const missing = toIdempotencyErrorResponse(new IdempotencyKeyInvalidError('missing'))
    const malformed = toIdempotencyErrorResponse(new IdempotencyKeyInvalidError('not a UUID'))
    expect(missing.message).toBe('Idempotency-Key header is required')
    expect(malformed.message).toBe('Invalid idempotency key format')
  })

  it.each([
    ['envelope', renderEnvelopeError, 'application/json; charset=utf-8'],
    ['problem details', renderProblemDetails, 'application/problem+json; charset=utf-8'],
  ])('renders each answer once as %s, and never lets it be changed', (_, render, type) => {
    const error = new RequestInProgressError()
    const answer = toIdempotencyErrorResponse(error)
    const rendered = render(answer, error)
    expect(render(answer, new RequestInProgressError())).toBe(rendered)
    expect(rendered.headers).toEqual({ 'retry-after': '1', 'content-type': type })
    expect(() => {
      ;(rendered.headers as Record<string, string>)['set-cookie'] = 'a=b'
    }).toThrow(TypeError)
    // Another code gets its own rendering, not the first one's.
    const mismatch = new FingerprintMismatchError()
    const other = render(toIdempotencyErrorResponse(mismatch), mismatch)
    expect(other).not.toBe(rendered)
    expect(other.status).toBe(409)
    expect(other.headers).toEqual({ 'content-type': type })
    expect(JSON.parse(other.body)).toMatchObject(
      render === renderEnvelopeError
        ? { error: { code: 'already_exists' } }
        : { status: 409, code: 'already_exists' },
    )
  })
})
