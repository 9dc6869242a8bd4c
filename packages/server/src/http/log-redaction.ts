import type { FastifyRequest, FastifyServerOptions, LogLevel } from 'fastify'

/** Fastify's logger options: its own and pino's. */
type LoggerOptions = Exclude<FastifyServerOptions['logger'], boolean | undefined>

const REDACTED = '[REDACTED]'

/**
 * Parameter names that carry a credential, compared letters and digits only, lower-cased, by
 * their end: `sig`, `X-Api-Key`, `access_token`, `client_secret`. Erring on the side of hiding
 * (`page_token` is hidden too): a log line loses a detail, never a secret.
 */
const CREDENTIAL_ENDINGS = [
  'sig',
  'signature',
  'token',
  'key',
  'secret',
  'password',
  'passwd',
  'pwd',
  'auth',
  'authorization',
  'credential',
  'credentials',
  'session',
  'sessionid',
  'jwt',
] as const

function isCredentialName(rawName: string): boolean {
  let name = rawName
  try {
    // `%73ig` is `sig` to the query parser, so it is `sig` here too.
    name = decodeURIComponent(rawName.replace(/\+/g, ' '))
  } catch {
    // Broken percent-encoding: judge the name as written.
  }
  const normalised = name.toLowerCase().replace(/[^a-z0-9]/g, '')
  return CREDENTIAL_ENDINGS.some((ending) => normalised.endsWith(ending))
}

/**
 * `name=value` after any of the separators a URL parser might split on (`?`, `&`, `;`, `#`):
 * wider than the server's own query parsing on purpose, since the text logged is the raw target.
 */
const PARAMETER = /([?&;#])([^=?&;#]*)=([^?&;#]*)/g
/** The userinfo of an absolute-form target (`http://user:password@host/...`). */
const USERINFO = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/

/**
 * The request target with the values of credential-like parameters, and any userinfo, replaced
 * by `[REDACTED]`; everything else as sent, so the log still says what was asked for.
 */
export function redactUrl(url: string): string {
  return url
    .replace(USERINFO, `$1${REDACTED}@`)
    .replace(PARAMETER, (whole, separator: string, name: string) =>
      isCredentialName(name) ? `${separator}${name}=${REDACTED}` : whole,
    )
}

/** Fastify's request serializer, with the URL redacted (and no `accept-version`, unused here). */
function serializeRequest(request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: redactUrl(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket.remotePort,
  }
}

/**
 * An error whose message (or stack) names a URL with a credential in it, as Fastify's own
 * "reply already sent" does: a copy with both redacted, of the same class and with the same
 * enumerable fields (`code`, `statusCode`), so that the error serializer shows it as before.
 */
function redactError(error: Error): Error {
  const message = redactUrl(error.message)
  const stack = error.stack === undefined ? undefined : redactUrl(error.stack)
  if (message === error.message && stack === error.stack) return error
  const copy = Object.assign(Object.create(Object.getPrototypeOf(error) as object) as Error, error)
  Object.defineProperty(copy, 'message', { value: message, enumerable: false, writable: true })
  Object.defineProperty(copy, 'stack', { value: stack, enumerable: false, writable: true })
  if (error.cause !== undefined)
    Object.defineProperty(copy, 'cause', { value: error.cause, enumerable: false, writable: true })
  return copy
}

function redactLogArgument(argument: unknown): unknown {
  if (typeof argument === 'string') return redactUrl(argument)
  if (argument instanceof Error) return redactError(argument)
  if (typeof argument === 'object' && argument !== null && 'err' in argument) {
    const { err } = argument
    if (err instanceof Error) {
      const redacted = redactError(err)
      if (redacted !== err) return { ...argument, err: redacted }
    }
  }
  return argument
}

/**
 * The logger's options: pino at `level`, with every URL it writes redacted: the request's URL
 * (its serializer), message strings and error messages alike. Download links carry their
 * signature in the query, and a signature in a log is a working link for whoever reads it.
 */
export function loggerOptions(level: LogLevel): LoggerOptions {
  return {
    level,
    serializers: { req: serializeRequest },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map(redactLogArgument) as Parameters<typeof method>)
      },
    },
  }
}
