import { isUtf8 } from 'node:buffer'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { ApiError } from '../domain/api-error.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The body's bytes as received (JSON bodies only): the idempotency fingerprint's input. */
    rawBody: Buffer | undefined
  }
}

/** Reads the raw body kept by {@link registerJsonBody}: the adapter's `readRawBody`. */
export function readRawBody(request: FastifyRequest): Buffer | undefined {
  return request.rawBody
}

/**
 * The request's content coding when it is one this server does not decode (any but `identity`).
 * Read as plain JSON, a gzipped body is "malformed", and a body merely labelled gzip would run
 * the operation on bytes the client said were something else (RFC 9110 8.4).
 */
function unsupportedContentCoding(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined
  const codings = [header]
    .flat()
    .flatMap((value) => value.split(','))
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '' && coding !== 'identity')
  return codings.length === 0 ? undefined : codings.join(', ')
}

/**
 * The charset a JSON content type names when it is not UTF-8. JSON between systems is UTF-8
 * (RFC 8259 8.1): a body labelled Latin-1 or UTF-16 would be read as bytes it is not.
 */
function unsupportedCharset(header: string | undefined): string | undefined {
  if (header === undefined) return undefined
  for (const parameter of header.split(';').slice(1)) {
    const equals = parameter.indexOf('=')
    if (equals === -1 || parameter.slice(0, equals).trim().toLowerCase() !== 'charset') continue
    const charset = parameter
      .slice(equals + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1')
      .toLowerCase()
    if (charset !== 'utf-8' && charset !== 'utf8') return charset
  }
  return undefined
}

/**
 * JSON bodies, and only JSON: another content type is a 400 (there is no text/plain parser to
 * let a body past the fingerprint), and so is a charset other than UTF-8 or bytes that are not. The bytes are kept as received for the idempotency
 * fingerprint, then parsed once. An empty body is no body (a POST such as `/pause` may carry the
 * header without one); a malformed one is the envelope's `invalid_argument`, never a 500.
 *
 * `parse` replaces `JSON.parse` where a scope needs it (exports keep int64 nanoseconds exact).
 */
export function registerJsonBody(
  app: FastifyInstance,
  bodyLimit: number,
  parse: (text: string) => unknown = JSON.parse,
): void {
  if (!app.hasRequestDecorator('rawBody')) app.decorateRequest('rawBody', undefined)
  app.removeAllContentTypeParsers()
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer', bodyLimit },
    (request, body, done) => {
      const bytes = typeof body === 'string' ? Buffer.from(body) : body
      request.rawBody = bytes
      const coding = unsupportedContentCoding(request.headers['content-encoding'])
      if (coding !== undefined && bytes.length > 0) {
        done(
          new ApiError(
            'invalid_argument',
            `Content-Encoding ${coding} is not supported: send the body uncompressed`,
          ),
          undefined,
        )
        return
      }
      const charset = unsupportedCharset(request.headers['content-type'])
      if (charset !== undefined && bytes.length > 0) {
        done(
          new ApiError(
            'invalid_argument',
            `Content-Type charset ${charset} is not supported: send the body as UTF-8`,
          ),
          undefined,
        )
        return
      }
      // Decoded as it is, a byte that is not UTF-8 would become U+FFFD and the operation would
      // run on text the client never sent.
      if (!isUtf8(bytes)) {
        done(new ApiError('invalid_argument', 'Malformed JSON body: it is not UTF-8'), undefined)
        return
      }
      const text = bytes.toString('utf8')
      if (text.trim() === '') {
        done(null, undefined)
        return
      }
      try {
        done(null, parse(text))
      } catch {
        done(new ApiError('invalid_argument', 'Malformed JSON body'), undefined)
      }
    },
  )
}
