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
    // fetch could not send these as a header: every call would fail before sending.
    [{ apiKey: 'kl\u00fc\u2713' }, '`apiKey`'],
    [{ apiKey: 'k\u0000' }, '`apiKey`'],
    // Past 2^31 - 1 ms a Node.js timer fires after 1 ms: a long wait would become none.
    [{ apiKey: 'k', timeoutMs: 2 ** 31 }, '`timeoutMs`'],
    [{ apiKey: 'k', deadlineMs: 1e10 }, '`deadlineMs`'],
    [{ apiKey: 'k', retry: { maxRetryAfterMs: 1e10 } }, '`retry.maxRetryAfterMs`'],
    [{ apiKey: 'k', retry: { maxDelayMs: 2 ** 31 } }, '`retry.maxDelayMs`'],
  ])('throws a TypeError naming the bad option in %j', (options, name) => {
    expect(() => createClient(options as unknown as ClientOptions)).toThrow(TypeError)
    expect(() => createClient(options as unknown as ClientOptions)).toThrow(name)
  })

  it('draws the line at the longest timer Node.js keeps, 2^31 - 1 ms', () => {
    const longest = 2 ** 31 - 1
    const retry = { baseDelayMs: longest, maxDelayMs: longest, maxRetryAfterMs: longest }
    expect(() => createClient({ apiKey: 'k', deadlineMs: longest, retry })).not.toThrow()
    expect(() => createClient({ apiKey: 'k', deadlineMs: longest + 1, retry })).toThrow(
      '`deadlineMs`',
    )
  })

  it('takes a Latin-1 API key, which fetch can send, and refuses one beyond', () => {
    expect(() => createClient({ apiKey: 'cl\u00e9' })).not.toThrow()
    expect(() => createClient({ apiKey: 'cl\u2713' })).toThrow('`apiKey`')
  })

  it('accepts a base URL with a path prefix and a trailing slash', () => {
    expect(() => createClient({ apiKey: 'k', baseUrl: 'https://example.com/api/' })).not.toThrow()
  })
})
