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
})
