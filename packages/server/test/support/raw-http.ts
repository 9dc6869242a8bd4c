import { expect } from 'vitest'
import type { RawAnswer } from './server.js'
import { REQUEST_ID, sendRaw } from './server.js'

export interface RawRequestOptions {
  /** The `X-Api-Key` line; none when undefined. */
  readonly apiKey?: string
  /** The `Host` line; the server's own when undefined, none when null. */
  readonly host?: string | null
  readonly extraLines?: readonly string[]
  readonly body?: string
}

/**
 * One request with the request target exactly as given (percent-encoding, absolute form, dot
 * segments: what fetch and node:http would normalise or refuse), over a fresh connection that
 * closes after the answer.
 */
export function sendTarget(
  url: string,
  method: string,
  target: string,
  options: RawRequestOptions = {},
): Promise<RawAnswer> {
  const host = options.host === undefined ? new URL(url).host : options.host
  const lines = [`${method} ${target} HTTP/1.1`]
  if (host !== null) lines.push(`Host: ${host}`)
  if (options.apiKey !== undefined) lines.push(`X-Api-Key: ${options.apiKey}`)
  lines.push('Connection: close', ...(options.extraLines ?? []))
  if (options.body !== undefined) {
    lines.push(
      'Content-Type: application/json',
      `Content-Length: ${String(Buffer.byteLength(options.body))}`,
    )
  }
  return sendRaw(url, lines.join('\r\n'), options.body ?? '')
}

/** The answer is `status` with the error envelope of `code`, as JSON, with a request id. */
export function expectRawEnvelope(answer: RawAnswer, status: number, code: string): void {
  expect(answer.status, answer.text).toBe(status)
  expect(answer.headers['content-type']).toMatch(/^application\/json/)
  expect(answer.headers['x-request-id']).toMatch(REQUEST_ID)
  const body = JSON.parse(answer.text) as { error?: { code?: unknown; message?: unknown } }
  expect(Object.keys(body)).toEqual(['error'])
  expect(body.error?.code).toBe(code)
  expect(typeof body.error?.message).toBe('string')
}
