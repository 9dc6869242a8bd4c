import { describe, expect, expectTypeOf, it } from 'vitest'
import {
  AlreadyExistsError,
  IdempotencyKeyReusedError,
  InternalError,
  InvalidArgumentError,
  NetworkError,
  NotFoundError,
  PaymentRequiredError,
  PermissionDeniedError,
  RateLimitedError,
  RequestInProgressError,
  RequestTimeoutError,
  TimeoutError,
  UnauthenticatedError,
  UnavailableError,
  isTicksupplyError,
} from '../src/index.js'
import type { AnyTicksupplyError, TicksupplyErrorCode } from '../src/index.js'
import { createApiError } from '../src/errors/create-api-error.js'

function errorFor(status: number, body: unknown, requestId?: string) {
  return createApiError({
    status,
    bodyText: typeof body === 'string' ? body : JSON.stringify(body),
    requestId,
    retryAfterMs: undefined,
  })
}

describe('createApiError', () => {
  it.each([
    [400, 'invalid_argument', InvalidArgumentError, false],
    [401, 'unauthenticated', UnauthenticatedError, false],
    [402, 'payment_required', PaymentRequiredError, false],
    [403, 'permission_denied', PermissionDeniedError, false],
    [404, 'not_found', NotFoundError, false],
    [408, 'request_timeout', RequestTimeoutError, true],
    [409, 'already_exists', AlreadyExistsError, false],
    [429, 'rate_limited', RateLimitedError, true],
    [500, 'internal', InternalError, true],
    [503, 'unavailable', UnavailableError, true],
  ] as const)('turns a %i %s into its own class', (status, code, ErrorClass, retryable) => {
    const error = errorFor(
      status,
      { error: { code, message: 'what happened', details: { subscription_id: 'sub_1' } } },
      'req_0123456789abcdef',
    )

    expect(error).toBeInstanceOf(ErrorClass)
    expect(error).toMatchObject({
      status,
      code,
      apiCode: code,
      message: 'what happened',
      requestId: 'req_0123456789abcdef',
      retryable,
      details: { subscription_id: 'sub_1' },
      name: ErrorClass.name,
    })
    expect(isTicksupplyError(error)).toBe(true)
  })

  it('tells the two idempotency 409s apart by their message', () => {
    const reused = errorFor(409, {
      error: {
        code: 'already_exists',
        message: 'Idempotency key reused with different request parameters',
      },
    })
    const inProgress = errorFor(409, {
      error: {
        code: 'already_exists',
        message: 'Request is still in progress. Please retry later.',
      },
    })

    expect(reused).toBeInstanceOf(IdempotencyKeyReusedError)
    expect(reused).toMatchObject({
      code: 'idempotency_key_reused',
      apiCode: 'already_exists',
      retryable: false,
    })
    expect(inProgress).toBeInstanceOf(RequestInProgressError)
    expect(inProgress).toMatchObject({
      code: 'request_in_progress',
      apiCode: 'already_exists',
      retryable: true,
    })
  })

  it('answers UnexpectedResponseError for a body without the envelope or an unknown code', () => {
    expect(errorFor(502, '<html>bad gateway</html>')).toMatchObject({
      code: 'unexpected_response',
      retryable: true,
      message: 'HTTP 502 without an error envelope: <html>bad gateway</html>',
    })
    expect(errorFor(418, { error: { code: 'teapot', message: 'short and stout' } })).toMatchObject({
      code: 'unexpected_response',
      apiCode: 'teapot',
      retryable: false,
    })
  })
})

describe('isTicksupplyError', () => {
  it('knows the client errors and nothing else', () => {
    expect(isTicksupplyError(new NetworkError({ message: 'reset' }))).toBe(true)
    expect(isTicksupplyError(new TimeoutError(10))).toBe(true)
    expect(isTicksupplyError(new Error('other'))).toBe(false)
    expect(isTicksupplyError(null)).toBe(false)
    expect(isTicksupplyError('not_found')).toBe(false)
  })

  it('recognises an error of another copy of the package by its registered symbol', () => {
    const foreign = { [Symbol.for('@ticksupply/client/error')]: true, code: 'not_found' }

    expect(isTicksupplyError(foreign)).toBe(true)
  })

  it('narrows to a union whose code switch is exhaustive', () => {
    expectTypeOf<AnyTicksupplyError['code']>().toEqualTypeOf<TicksupplyErrorCode>()
    const describeCode = (error: AnyTicksupplyError): string => {
      switch (error.code) {
        case 'invalid_argument':
        case 'unauthenticated':
        case 'payment_required':
        case 'permission_denied':
        case 'not_found':
        case 'already_exists':
        case 'idempotency_key_reused':
          return 'fix the request'
        case 'request_timeout':
        case 'request_in_progress':
        case 'rate_limited':
        case 'internal':
        case 'unavailable':
        case 'unexpected_response':
        case 'network_error':
        case 'timeout':
          return 'retry'
      }
    }
    expect(describeCode(new TimeoutError(1))).toBe('retry')
  })
})
