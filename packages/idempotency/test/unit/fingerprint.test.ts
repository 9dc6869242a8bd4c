import { describe, expect, it } from 'vitest'
import { fingerprintRequest } from '@ticksupply/idempotency'

const body = Buffer.from('{"datastream_id":1}')

describe('fingerprintRequest', () => {
  it('is a SHA-256 digest in hex, the same for the same request', () => {
    const first = fingerprintRequest('POST', '/v1/subscriptions', body)
    expect(first).toMatch(/^[0-9a-f]{64}$/)
    expect(fingerprintRequest('POST', '/v1/subscriptions', Buffer.from(body))).toBe(first)
  })

  it.each([
    ['the method', fingerprintRequest('DELETE', '/v1/subscriptions', body)],
    ['the path', fingerprintRequest('POST', '/v1/subscriptions/x', body)],
    ['the query string', fingerprintRequest('POST', '/v1/subscriptions?a=1', body)],
    [
      'the body bytes',
      fingerprintRequest('POST', '/v1/subscriptions', Buffer.from('{"datastream_id":2}')),
    ],
    [
      'key order in the body',
      fingerprintRequest('POST', '/v1/subscriptions', Buffer.from('{ "datastream_id":1}')),
    ],
  ])('changes with %s', (_part, other) => {
    expect(other).not.toBe(fingerprintRequest('POST', '/v1/subscriptions', body))
  })

  it('frames its parts, so that moving bytes between path and body changes it', () => {
    const a = fingerprintRequest('POST', '/v1/ab', Buffer.from('c'))
    const b = fingerprintRequest('POST', '/v1/a', Buffer.from('bc'))
    expect(a).not.toBe(b)
  })

  describe('a request target in absolute form (RFC 9112 3.2.2) counts as its path and query', () => {
    const origin = (target: string) => fingerprintRequest('POST', target, body)

    it.each([
      ['http://127.0.0.1:8080/v1/subscriptions', '/v1/subscriptions'],
      ['https://api.example.com/v1/subscriptions', '/v1/subscriptions'],
      ['HTTP://API.EXAMPLE.COM/v1/subscriptions', '/v1/subscriptions'],
      ['http://user@[::1]:8080/v1/subscriptions?a=1&b=2', '/v1/subscriptions?a=1&b=2'],
      ['http://example.com', '/'],
      ['http://example.com?a=1', '/?a=1'],
    ])('%s is %s', (absolute, originForm) => {
      expect(origin(absolute)).toBe(origin(originForm))
    })

    it('keeps the path and query exactly as sent', () => {
      expect(origin('http://example.com/v1/Subscriptions')).not.toBe(origin('/v1/subscriptions'))
      expect(origin('http://example.com/v1/subscriptions?')).not.toBe(origin('/v1/subscriptions'))
      expect(origin('http://example.com//v1/subscriptions')).not.toBe(origin('/v1/subscriptions'))
    })

    it('leaves a target that is not in absolute form alone', () => {
      expect(origin('v1/subscriptions')).not.toBe(origin('/v1/subscriptions'))
      expect(origin('*')).not.toBe(origin('/'))
    })
  })
})
