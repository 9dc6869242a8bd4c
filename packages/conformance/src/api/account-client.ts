import type { HeaderLine, HttpClient, HttpReply } from '../http/http-client.js'

export interface ApiRequest {
  readonly method: string
  /** Path and query as sent, e.g. `/v1/subscriptions`. */
  readonly path: string
  /** A JSON body, serialised with `JSON.stringify`; sent as `application/json`. */
  readonly json?: unknown
  /** A body sent exactly as given, as `application/json` (malformed JSON included). */
  readonly rawBody?: string
  /** `Idempotency-Key`: one line for a string, one line per entry for an array, none if absent. */
  readonly key?: string | readonly string[]
  /** Extra header lines (e.g. the slow header); a `Content-Type` here replaces the default. */
  readonly headers?: readonly HeaderLine[]
  /** `X-Api-Key`: the account's by default; another value, or `null` for no header at all. */
  readonly apiKey?: string | null
}

/** Requests on behalf of one API key. */
export interface AccountClient {
  /** How the report names this key, e.g. "the account's key". */
  readonly label: string
  send(request: ApiRequest): Promise<HttpReply>
  abandon(request: ApiRequest, afterMs: number): Promise<void>
}

export function createAccountClient(
  http: HttpClient,
  apiKey: string,
  label: string,
): AccountClient {
  const toHttp = (request: ApiRequest) => {
    const headers: HeaderLine[] = []
    const chosenKey = request.apiKey === undefined ? apiKey : request.apiKey
    if (chosenKey !== null) headers.push(['X-Api-Key', chosenKey])
    for (const value of [request.key ?? []].flat()) headers.push(['Idempotency-Key', value])
    const body =
      request.rawBody ?? (request.json === undefined ? undefined : JSON.stringify(request.json))
    const extra = request.headers ?? []
    // A request that names its own Content-Type sends that one line instead of the default.
    const typed = extra.some(([name]) => name.toLowerCase() === 'content-type')
    if (body !== undefined && !typed) headers.push(['Content-Type', 'application/json'])
    headers.push(...extra)
    return {
      method: request.method,
      path: request.path,
      headers,
      ...(body === undefined ? {} : { body }),
    }
  }
  return {
    label,
    send: (request) => http.send(toHttp(request)),
    abandon: (request, afterMs) => http.abandon(toHttp(request), afterMs),
  }
}
