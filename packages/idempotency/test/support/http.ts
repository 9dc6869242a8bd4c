import { randomUUID } from 'node:crypto'
import { request as httpRequest } from 'node:http'

export interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly body: Buffer
  readonly text: string
}

/** One request over loopback with fetch; the body is read as bytes. */
export async function send(
  url: string,
  init: {
    method?: string
    key?: string
    tenant?: string
    body?: string
    headers?: Record<string, string>
  } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...init.headers }
  if (init.key !== undefined) headers['idempotency-key'] = init.key
  if (init.tenant !== undefined) headers['x-tenant'] = init.tenant
  if (init.body !== undefined) headers['content-type'] ??= 'application/json'
  const response = await fetch(url, {
    method: init.method ?? 'POST',
    // A redirect is an answer to look at, not to follow.
    redirect: 'manual',
    headers,
    ...(init.body === undefined ? {} : { body: init.body }),
  })
  const body = Buffer.from(await response.arrayBuffer())
  return { status: response.status, headers: response.headers, body, text: body.toString('utf8') }
}

/**
 * Sends a request with node:http and destroys the socket `afterMs` later (0: right after the
 * request is written), before any answer can be read.
 */
export function sendAndAbandon(
  url: string,
  options: { key: string; body: string; tenant?: string; afterMs?: number },
): Promise<void> {
  return new Promise((resolve) => {
    const target = new URL(url)
    const request = httpRequest({
      host: target.hostname,
      port: target.port,
      path: target.pathname + target.search,
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'idempotency-key': options.key,
        'x-tenant': options.tenant ?? 'default',
        'content-length': Buffer.byteLength(options.body),
      },
    })
    request.on('error', () => {
      resolve()
    })
    request.on('close', () => {
      resolve()
    })
    request.end(options.body, () => {
      setTimeout(() => request.destroy(), options.afterMs ?? 0)
    })
  })
}

export const newKey = (): string => randomUUID()

/**
 * Sends a POST whose headers are given line by line (name, value, name, value, ...), so that a
 * header can be repeated on two lines, which fetch would merge into one.
 */
export function sendHeaderLines(
  url: string,
  lines: readonly string[],
  body = '',
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url)
    const request = httpRequest({
      host: target.hostname,
      port: target.port,
      path: target.pathname + target.search,
      method: 'POST',
      headers: [...lines, 'content-length', String(Buffer.byteLength(body))],
    })
    request.on('error', reject)
    request.on('response', (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => {
        resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString() })
      })
    })
    request.end(body)
  })
}
