import { randomUUID } from 'node:crypto'
import type { Random } from './random.js'
import type { DomainHints, Json, Schema } from './schema-values.js'
import {
  HOSTILE_NUMBER_TEXTS,
  HOSTILE_STRINGS,
  SchemaValues,
  deepNesting,
} from './schema-values.js'

/** One generated request, as bytes on the wire and what the judge needs to know of it. */
export interface FuzzCase {
  readonly index: number
  /** What kind of mutation made it, for the report. */
  readonly kind: string
  /** The operation it was made from: `POST /v1/subscriptions`. */
  readonly operation: string
  readonly method: string
  /** The request target as written on the request line. */
  readonly target: string
  /** The bytes to write. */
  readonly bytes: Buffer
  /** Whether the request carried one valid API key (and nothing that would spoil it). */
  readonly authenticated: boolean
  /** Whether its target, however spelled, aims at a `/v1` route. */
  readonly aimsAtV1: boolean
  /** Well-formed HTTP/1.1 that keeps the connection open; else sent on a connection of its own. */
  readonly keepAlive: boolean
}

interface Parameter {
  readonly in: 'path' | 'query' | 'header' | 'cookie'
  readonly name: string
  readonly required?: boolean
  readonly schema?: Schema
}

interface Operation {
  readonly parameters?: readonly Parameter[]
  readonly requestBody?: {
    readonly content?: Readonly<Record<string, { readonly schema?: Schema }>>
  }
}

export interface OpenApiDocument {
  readonly paths: Readonly<Record<string, Readonly<Record<string, Operation>>>>
  readonly components?: { readonly schemas?: Readonly<Record<string, Schema>> }
}

export interface FuzzContext {
  /** `127.0.0.1:port`, for the Host header and absolute-form targets. */
  readonly host: string
  readonly apiKey: string
  /** A valid key of another account. */
  readonly otherApiKey: string
  /**
   * Real ids for path parameters, by collection and parameter name: `subscriptions:id`,
   * `exports:id`, `export-schemas:id`, `exchanges:exchange`, `downloads:artifactId`.
   */
  readonly ids: Readonly<Record<string, readonly string[]>>
  readonly hints: DomainHints
}

interface Endpoint {
  readonly method: string
  readonly path: string
  readonly operation: Operation
}

const KEYED = new Set(['POST', 'DELETE'])
const OTHER_METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'OPTIONS',
  'TRACE',
  'PROPFIND',
  'SEARCH',
  'QUERY',
  'FOO',
  'M-SEARCH',
]

/**
 * Requests generated from the OpenAPI description: each operation, filled from its schemas and
 * the context's real ids, then broken in one or more ways: wrong types, missing and extra
 * fields, huge numbers, unicode, deep nesting, bad JSON, duplicate headers, encoded paths,
 * absolute-form targets, other methods, other credentials, malformed HTTP.
 */
export class CaseGenerator {
  readonly #endpoints: readonly Endpoint[]
  readonly #context: FuzzContext
  readonly #random: Random
  readonly #values: SchemaValues

  constructor(document: OpenApiDocument, context: FuzzContext, random: Random) {
    const endpoints: Endpoint[] = []
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        endpoints.push({ method: method.toUpperCase(), path, operation })
      }
    }
    this.#endpoints = endpoints
    this.#context = context
    this.#random = random
    this.#values = new SchemaValues(document.components?.schemas ?? {}, context.hints, random)
  }

  get endpointCount(): number {
    return this.#endpoints.length
  }

  generate(index: number): FuzzCase {
    const random = this.#random
    const endpoint = random.pick(this.#endpoints)
    const kind = random.pick(MUTATIONS)
    return this.#build(index, endpoint, kind)
  }

  #build(index: number, endpoint: Endpoint, kind: Mutation): FuzzCase {
    const random = this.#random
    const context = this.#context
    let method = endpoint.method
    if (kind === 'method') method = random.pick(OTHER_METHODS)
    let path = this.#fillPath(endpoint, kind === 'path')
    const query = this.#query(endpoint, kind === 'query')
    if (kind === 'target') path = this.#respell(path)
    let target = query === '' ? path : `${path}?${query}`
    if (kind === 'absolute') {
      const host = random.pick([
        context.host,
        'evil.example',
        'user:pass@127.0.0.1',
        context.host.toUpperCase(),
      ])
      target = `${random.pick(['http', 'https', 'HTTP'])}://${host}${target}`
    }
    const headers: [string, string][] = [['Host', context.host]]
    let authenticated = true
    switch (kind === 'auth' ? random.int(0, 5) : 0) {
      case 0:
        headers.push(['X-Api-Key', context.apiKey])
        break
      case 1:
        authenticated = false
        break
      case 2:
        headers.push([
          'X-Api-Key',
          random.pick([
            '',
            'tsk_' + 'a'.repeat(48),
            context.apiKey.slice(0, -1),
            `${context.apiKey}x`,
            context.apiKey.toUpperCase(),
          ]),
        ])
        authenticated = false
        break
      case 3:
        headers.push(['X-Api-Key', context.apiKey], ['X-Api-Key', context.otherApiKey])
        authenticated = false
        break
      case 4:
        // Another account's key, or this one with the whitespace HTTP strips around a value.
        headers.push(['x-api-key', random.pick([context.otherApiKey, `\t${context.apiKey} `])])
        break
      default:
        headers.push(['Authorization', `Bearer ${context.apiKey}`])
        authenticated = false
    }
    if (KEYED.has(method) || kind === 'key') headers.push(...this.#idempotencyKey(kind === 'key'))
    let body = this.#body(endpoint, kind)
    let contentType: string | undefined = body === undefined ? undefined : 'application/json'
    if (kind === 'content_type' && body !== undefined) {
      contentType = random.pick([
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/json; charset=utf-16',
        'application/JSON',
        'application/json, text/plain',
        'application/vnd.api+json',
        '',
      ])
      if (random.chance(0.2)) contentType = undefined
    }
    if (kind === 'empty_body') body = Buffer.alloc(0)
    if (contentType !== undefined) headers.push(['Content-Type', contentType])
    if (kind === 'headers') headers.push(...this.#headerNoise())
    let keepAlive = true
    let framing: 'length' | 'chunked' | 'none' = body === undefined ? 'none' : 'length'
    if (kind === 'chunked' && body !== undefined) framing = 'chunked'
    const lines = headers.map(([name, value]) => `${name}: ${value}`)
    if (framing === 'length' && body !== undefined)
      lines.push(`Content-Length: ${String(body.length)}`)
    if (framing === 'chunked') lines.push('Transfer-Encoding: chunked')
    let head = `${method} ${target} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`
    let payload = body ?? Buffer.alloc(0)
    if (framing === 'chunked' && body !== undefined) payload = chunk(body, random)
    if (kind === 'malformed') {
      keepAlive = false
      const broken = this.#malformed(method, target, lines, payload)
      head = broken.head
      payload = broken.payload
    }
    if (method === 'HEAD' || kind === 'method') keepAlive = keepAlive && method !== 'HEAD'
    const aimsAtV1 = endpoint.path.startsWith('/v1')
    return {
      index,
      kind,
      operation: `${endpoint.method} ${endpoint.path}`,
      method,
      target,
      bytes: Buffer.concat([Buffer.from(head, 'latin1'), payload]),
      authenticated,
      aimsAtV1,
      keepAlive,
    }
  }

  #fillPath(endpoint: Endpoint, hostile: boolean): string {
    const random = this.#random
    const collection =
      endpoint.path.split('/').find((part, index) => index > 0 && part !== 'v1') ?? ''
    return endpoint.path.replace(/\{([^}]+)\}/g, (_whole, name: string) => {
      const real = this.#context.ids[`${collection}:${name}`] ?? []
      if (!hostile && real.length > 0 && random.chance(0.85))
        return percentEncode(random.pick(real))
      return random.pick<() => string>([
        () => percentEncode(random.pick(HOSTILE_STRINGS).slice(0, 300)),
        () =>
          random.pick([
            '%2F',
            '%2e%2e',
            '..%2F..',
            '%00',
            '%c0%af',
            '%',
            '%zz',
            '%FF%FE',
            '%u0041',
          ]),
        () => 'x'.repeat(random.int(90, 200)),
        () => `sub_${'0'.repeat(32)}`,
        () => random.pick(real.length > 0 ? real : ['x']).toUpperCase(),
        () => `${random.pick(real.length > 0 ? real : ['x'])}%20`,
        () => percentEncode('😀é\u202e'),
      ])()
    })
  }

  #query(endpoint: Endpoint, hostile: boolean): string {
    const random = this.#random
    const parameters = (endpoint.operation.parameters ?? []).filter((p) => p.in === 'query')
    const pairs: string[] = []
    for (const parameter of parameters) {
      if (!hostile && !random.chance(0.5)) continue
      const value =
        hostile && random.chance(0.7)
          ? this.#values.wrong(parameter.schema ?? {})
          : this.#values.valid(parameter.schema ?? {}, parameter.name)
      const text = typeof value === 'string' ? value : JSON.stringify(value)
      pairs.push(`${parameter.name}=${percentEncode(text.slice(0, 2_000))}`)
      if (hostile && random.chance(0.3))
        pairs.push(`${parameter.name}=${percentEncode(text.slice(0, 50))}`)
    }
    if (hostile) {
      pairs.push(
        ...random.pick([
          ['unknown=1'],
          ['limit[]=1'],
          ['limit=1&limit=2'],
          [
            'page_token=' +
              percentEncode(Buffer.from(random.string('{}"ab:,1', 40)).toString('base64url')),
          ],
          ['%ZZ=1'],
          ['='],
          ['&&&'],
          ['a=' + '%'.repeat(3)],
          [`x=${'y'.repeat(5_000)}`],
          ['__proto__[x]=1', 'constructor[prototype][x]=1'],
        ]),
      )
    }
    return pairs.join('&')
  }

  #respell(path: string): string {
    const random = this.#random
    return random.pick<() => string>([
      () => path.replace('/v1', '/%76%31'),
      () => path.replace('/v1', '/V1'),
      () => `/${path}`,
      () => path.replace(/\//g, '//'),
      () => `${path}/`,
      () => `/v1/..${path}`,
      () => `/./${path.slice(1)}`,
      () => path.replace(/\//g, '%2F'),
      () => `${path};jsessionid=1`,
      () => `${path}%00`,
      () => `${path}#fragment`,
      () => path.replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16)}`),
      () => `${path}\t`,
      () => '*',
      () => path + '/..',
    ])()
  }

  #idempotencyKey(hostile: boolean): [string, string][] {
    const random = this.#random
    if (!hostile) return random.chance(0.7) ? [['Idempotency-Key', randomUUID()]] : []
    const key = randomUUID()
    return random.pick<() => [string, string][]>([
      () => [
        ['Idempotency-Key', key],
        ['Idempotency-Key', key],
      ],
      () => [['Idempotency-Key', '']],
      () => [['Idempotency-Key', `{${key}`]],
      () => [['Idempotency-Key', key.toUpperCase()]],
      () => [['Idempotency-Key', `urn:uuid:${key}`]],
      () => [['Idempotency-Key', `${key}, ${randomUUID()}`]],
      () => [['Idempotency-Key', 'x'.repeat(129)]],
      () => [['Idempotency-Key', `\t${key} `]],
      () => [['Idempotency-Key', key.replace(/-/g, '')]],
      () => [['idempotency-key', Buffer.from('é😀', 'utf8').toString('latin1')]],
    ])()
  }

  #body(endpoint: Endpoint, kind: Mutation): Buffer | undefined {
    const random = this.#random
    const schema = endpoint.operation.requestBody?.content?.['application/json']?.schema
    if (schema === undefined) {
      // Bodies where none belongs, now and then.
      if (kind === 'body' || kind === 'bad_json')
        return Buffer.from(random.pick(['{}', '{"a":1}', 'null', '[]']))
      return undefined
    }
    const valid = this.#values.valid(schema)
    switch (kind) {
      case 'wrong_type':
        return json(this.#mutateField(valid, schema, 'wrong'))
      case 'missing':
        return json(this.#mutateField(valid, schema, 'missing'))
      case 'extra':
        return json(this.#mutateField(valid, schema, 'extra'))
      case 'huge_number':
        return Buffer.from(this.#hugeNumberText(valid))
      case 'unicode':
        return json(this.#mutateField(valid, schema, 'unicode'))
      case 'nested':
        return json(this.#mutateNested(valid))
      case 'large':
        return Buffer.from(
          JSON.stringify({
            ...asObject(valid),
            padding: 'p'.repeat(random.int(900_000, 1_200_000)),
          }),
        )
      case 'deep':
        return random.chance(0.5)
          ? json(this.#mutateField(valid, schema, 'deep'))
          : Buffer.from(
              random.chance(0.5)
                ? `${'['.repeat(100_000)}${']'.repeat(100_000)}`
                : `${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`,
            )
      case 'bad_json':
        return Buffer.from(badJson(JSON.stringify(valid), random), 'utf8')
      case 'body':
        return json(
          random.pick<Json>([
            null,
            [],
            1,
            'text',
            true,
            [valid],
            { ...asObject(valid), ...asObject(valid) },
          ]),
        )
      case 'valid':
      case 'empty_body':
      case 'content_type':
      case 'chunked':
      case 'headers':
      case 'key':
      case 'auth':
      case 'path':
      case 'query':
      case 'target':
      case 'absolute':
      case 'method':
      case 'malformed':
        return json(valid)
    }
  }

  #mutateField(
    valid: Json,
    schema: Schema,
    how: 'wrong' | 'missing' | 'extra' | 'unicode' | 'deep',
  ): Json {
    const random = this.#random
    const object = { ...asObject(valid) }
    const resolved = this.#values.resolve(schema)
    const names = Object.keys(resolved.properties ?? object)
    const name = names.length > 0 ? random.pick(names) : 'field'
    switch (how) {
      case 'wrong':
        object[name] = this.#values.wrong(resolved.properties?.[name] ?? {})
        return object
      case 'missing':
        // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- the field under test
        delete object[name]
        return object
      case 'extra':
        object[
          random.pick(['extra', '__proto__', 'constructor', 'id', 'account_id', 'status', ''])
        ] = random.pick<Json>([1, 'x', { polluted: true }, null])
        return object
      case 'unicode':
        object[name] = random.pick(HOSTILE_STRINGS)
        return object
      case 'deep':
        object[name] = deepNesting(random.int(100, 1_000), random.chance(0.5))
        return object
    }
  }

  /**
   * A valid body with one value somewhere inside it (an array item, a nested field) replaced by
   * a wrong one, removed, or given a sibling: inline schemas, columns, format options.
   */
  #mutateNested(valid: Json): Json {
    const random = this.#random
    const paths: (string | number)[][] = []
    const walk = (value: Json, path: (string | number)[]) => {
      if (path.length > 0) paths.push(path)
      if (path.length >= 6 || typeof value !== 'object' || value === null) return
      if (Array.isArray(value)) {
        value.forEach((item: Json, index) => {
          walk(item, [...path, index])
        })
      } else for (const [name, item] of Object.entries(value)) walk(item, [...path, name])
    }
    walk(valid, [])
    if (paths.length === 0) return this.#values.wrong({})
    const copy = JSON.parse(JSON.stringify(valid)) as Json
    const path = random.pick(paths)
    let parent = copy as Record<string | number, Json>
    for (const step of path.slice(0, -1)) parent = parent[step] as Record<string | number, Json>
    const last = path.at(-1) ?? ''
    const how = random.int(0, 2)
    if (how === 0) parent[last] = this.#values.wrong({})
    else if (how === 1 && !Array.isArray(parent)) {
      // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- the field under test
      delete parent[last]
    } else if (!Array.isArray(parent))
      parent[random.pick(['extra', '__proto__', 'constructor'])] = 1
    else parent[last] = random.pick(HOSTILE_STRINGS)
    return copy
  }

  /** A valid body with one number written as a literal JSON.stringify could never produce. */
  #hugeNumberText(valid: Json): string {
    const random = this.#random
    const object = asObject(valid)
    const names = Object.keys(object)
    const literal = random.pick(HOSTILE_NUMBER_TEXTS)
    if (names.length === 0) return `{"datastream_id":${literal}}`
    const name = random.pick(names)
    const rest = { ...object }
    // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- replaced by the literal
    delete rest[name]
    const others = JSON.stringify(rest).slice(1, -1)
    return `{${others}${others === '' ? '' : ','}${JSON.stringify(name)}:${literal}}`
  }

  #headerNoise(): [string, string][] {
    const random = this.#random
    return random.pick<() => [string, string][]>([
      () => [
        ['Content-Type', 'application/json'],
        ['Content-Type', 'text/plain'],
      ],
      () => [['X-Request-Id', 'req_attacker']],
      () => [
        ['X-Forwarded-For', '1.2.3.4'],
        ['X-Forwarded-Host', 'evil.example'],
      ],
      () => [['Accept', '*/*'.repeat(500)]],
      () => [['X-Long', 'a'.repeat(random.int(1_000, 20_000))]],
      () => [['Accept-Encoding', 'gzip, deflate, br, zstd']],
      () => [['Expect', '100-continue']],
      () => [['Cookie', 'session=1'.repeat(100)]],
      () => [['Range', 'bytes=0-1']],
      () => [['If-None-Match', '*']],
      () => [['Origin', 'https://evil.example']],
    ])()
  }

  /** Broken HTTP/1.1 framing, on a connection of its own. */
  #malformed(
    method: string,
    target: string,
    lines: readonly string[],
    payload: Buffer,
  ): { head: string; payload: Buffer } {
    const random = this.#random
    const join = (extra: readonly string[], requestLine = `${method} ${target} HTTP/1.1`) =>
      `${requestLine}\r\n${[...lines, ...extra].join('\r\n')}\r\n\r\n`
    return random.pick<() => { head: string; payload: Buffer }>([
      () => ({ head: join(['Content-Length: 1', 'Content-Length: 2']), payload }),
      () => ({
        head: join(['Transfer-Encoding: chunked']),
        payload: Buffer.concat([payload, Buffer.from('\r\nzz\r\n')]),
      }),
      () => ({ head: join(['Transfer-Encoding: gzip']), payload }),
      () => ({ head: join(['Content-Length: -1']), payload }),
      () => ({ head: join(['Content-Length: 1e3']), payload }),
      () => ({ head: join(['Content-Length: 0x10']), payload }),
      () => ({ head: join(['Transfer-Encoding: chunked', 'Content-Length: 3']), payload }),
      () => ({ head: join(['Transfer-Encoding: chunked, identity']), payload }),
      () => ({
        head: join([`X-Latin1: ${Buffer.from('é', 'utf8').toString('latin1')}\u00ff`]),
        payload,
      }),
      () => ({ head: join([], `${method} ${target} HTTP/1.0`), payload }),
      () => ({ head: join([], `${method} ${target} HTTP/2.0`), payload }),
      () => ({ head: join([], `${method.toLowerCase()} ${target} HTTP/1.1`), payload }),
      () => ({ head: join([], `${method}  ${target} HTTP/1.1`), payload }),
      () => ({ head: join(['Bad Header: x']), payload }),
      () => ({ head: join(['X-Null: a\u0000b']), payload }),
      () => ({ head: join(['X-Obs-Fold: a', ' b']), payload }),
      () => ({ head: join(['Host: other.example']), payload }),
      () => ({
        head: `${method} ${target} HTTP/1.1\r\n${lines.filter((l) => !l.startsWith('Host:')).join('\r\n')}\r\n\r\n`,
        payload,
      }),
      () => ({ head: join([`X-Huge: ${'h'.repeat(70_000)}`]), payload }),
      () => ({
        head: `${method} /${'a'.repeat(20_000)} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`,
        payload,
      }),
      () => ({
        head: `CONNECT 127.0.0.1:1 HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`,
        payload: Buffer.alloc(0),
      }),
      () => ({ head: `\u0016\u0003\u0001\u0002\u0000\u0001\u0000`, payload: Buffer.alloc(0) }),
      () => ({ head: `${join([])}GARBAGE\r\n\r\n`, payload }),
      () => ({ head: `${method} ${target} HTTP/1.1\n${lines.join('\n')}\n\n`, payload }),
    ])()
  }
}

const MUTATIONS = [
  'valid',
  'valid',
  'wrong_type',
  'wrong_type',
  'missing',
  'extra',
  'huge_number',
  'huge_number',
  'unicode',
  'deep',
  'nested',
  'nested',
  'large',
  'bad_json',
  'bad_json',
  'body',
  'empty_body',
  'content_type',
  'chunked',
  'headers',
  'key',
  'key',
  'auth',
  'auth',
  'path',
  'path',
  'query',
  'query',
  'target',
  'target',
  'absolute',
  'method',
  'malformed',
] as const
type Mutation = (typeof MUTATIONS)[number]

function json(value: Json): Buffer {
  return Buffer.from(JSON.stringify(value))
}

function asObject(value: Json): Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? { ...(value as Record<string, Json>) }
    : {}
}

function badJson(text: string, random: Random): string {
  return random.pick<() => string>([
    () => text.slice(0, random.int(0, Math.max(0, text.length - 1))),
    () => `${text},`,
    () => text.replace(/"/g, "'"),
    () => `\ufeff${text}`,
    () => `${text}${text}`,
    () => text.replace(/}$/, ',}'),
    () => `{"a":NaN}`,
    () => `{"a":1,"a":2}`,
    () => '{"__proto__":{"polluted":true}}',
    () => '{"constructor":{"prototype":{"polluted":true}}}',
    () => `// comment\n${text}`,
    () => '\u0000',
    () => '"\\ud800"',
    () => `{"a":"\\u00"}`,
    () => ' '.repeat(random.int(1, 1000)),
    () => Buffer.from([0xff, 0xfe, 0xfd]).toString('latin1'),
  ])()
}

/** The body in chunks of random sizes, sometimes with extensions and trailers. */
function chunk(body: Buffer, random: Random): Buffer {
  const parts: Buffer[] = []
  let offset = 0
  while (offset < body.length) {
    const size = Math.min(body.length - offset, random.int(1, 64))
    const extension = random.chance(0.1) ? ';ext=1' : ''
    parts.push(
      Buffer.from(`${size.toString(16)}${extension}\r\n`),
      body.subarray(offset, offset + size),
      Buffer.from('\r\n'),
    )
    offset += size
  }
  parts.push(Buffer.from(random.chance(0.1) ? '0\r\nX-Trailer: 1\r\n\r\n' : '0\r\n\r\n'))
  return Buffer.concat(parts)
}

/** Percent-encodes the UTF-8 bytes of `text` (a lone surrogate becomes U+FFFD), never throwing. */
function percentEncode(text: string): string {
  let encoded = ''
  for (const byte of Buffer.from(text, 'utf8')) {
    const char = String.fromCharCode(byte)
    encoded += /[A-Za-z0-9\-._~]/.test(char)
      ? char
      : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return encoded
}
