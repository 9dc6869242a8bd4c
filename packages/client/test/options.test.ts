import { describe, expect, it } from 'vitest'
import { createClient } from '../src/index.js'
import type { ClientOptions } from '../src/index.js'

describe('createClient', () => {
  it.each([
    [{ apiKey: '' }, '`apiKey`'],
    [{ apiKey: 'a\nb' }, '`apiKey`'],
    [{ apiKey: 'k', baseUrl: 'not a url' }, '`baseUrl`'],
    [{ apiKey: 'k', baseUrl: 'ftp://example.com' }, '`baseUrl`'],
    [{ apiKey: 'k', baseUrl: 'http://example.com/?q=1' }, '`baseUrl`'],
    [{ apiKey: 'k', timeoutMs: 0 }, '`timeoutMs`'],
    [{ apiKey: 'k', deadlineMs: Number.NaN }, '`deadlineMs`'],
    [{ apiKey: 'k', retry: { maxAttempts: 0 } }, '`retry.maxAttempts`'],
    [{ apiKey: 'k', retry: { maxAttempts: 1.5 } }, '`retry.maxAttempts`'],
    [{ apiKey: 'k', retry: { baseDelayMs: -1 } }, '`retry.baseDelayMs`'],
    [{ apiKey: 'k', retry: { baseDelayMs: 500, maxDelayMs: 100 } }, '`retry.maxDelayMs`'],
    [{ apiKey: 'k', retry: { maxRetryAfterMs: Infinity } }, '`retry.maxRetryAfterMs`'],
    [{ apiKey: 'k', keyStore: { get: () => Promise.resolve(undefined) } }, '`keyStore`'],
    [{ apiKey: 'k', random: 0.5 }, '`random`'],
    [{ apiKey: 'k', signal: 'stop' }, '`signal`'],
  ])('throws a TypeError naming the bad option in %j', (options, name) => {
    expect(() => createClient(options as unknown as ClientOptions)).toThrow(TypeError)
    expect(() => createClient(options as unknown as ClientOptions)).toThrow(name)
  })

  it('accepts a base URL with a path prefix and a trailing slash', () => {
    expect(() => createClient({ apiKey: 'k', baseUrl: 'https://example.com/api/' })).not.toThrow()
  })
})
