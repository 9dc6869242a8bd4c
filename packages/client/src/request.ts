import { NetworkError } from './errors/network-error.js'
import { TimeoutError } from './errors/timeout-error.js'

export interface HttpRequest {
  readonly url: string
  readonly method: string
  readonly headers: Readonly<Record<string, string>>
  readonly body?: string
}

/** A whole response: the body is read inside the attempt, so the timeout covers it too. */
export interface HttpResponse {
  readonly status: number
  readonly headers: Headers
  readonly bodyText: string
}

/**
 * Sends one attempt and reads the whole body within `timeoutMs`. Throws a {@link TimeoutError}
 * when the time runs out, a {@link NetworkError} when the connection fails, and the signal's
 * reason, unchanged, when `signal` aborts.
 */
export async function sendRequest(
  fetchFn: typeof globalThis.fetch,
  request: HttpRequest,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<HttpResponse> {
  signal?.throwIfAborted()
  // One controller for both causes, so that fetch sees a single signal; its reason tells
  // afterwards whether the caller or the timer stopped the attempt.
  const controller = new AbortController()
  const timer = setTimeout(() => {
    controller.abort(new TimeoutError(timeoutMs))
  }, timeoutMs)
  const forwardAbort = (): void => {
    controller.abort(signal?.reason)
  }
  signal?.addEventListener('abort', forwardAbort, { once: true })
  try {
    const init: RequestInit = {
      method: request.method,
      headers: request.headers,
      signal: controller.signal,
      // A redirect would re-send a POST elsewhere without our say. The API never redirects, so
      // a 3xx comes back as it is and ends as an UnexpectedResponseError, not retried.
      redirect: 'manual',
    }
    if (request.body !== undefined) init.body = request.body
    const response = await fetchFn(request.url, init)
    const bodyText = await response.text()
    return { status: response.status, headers: response.headers, bodyText }
  } catch (error) {
    if (controller.signal.aborted) throw controller.signal.reason
    throw new NetworkError({ message: describeFailure(error), cause: error })
  } finally {
    clearTimeout(timer)
    signal?.removeEventListener('abort', forwardAbort)
  }
}

/** undici says only "fetch failed"; the useful part (ECONNRESET, "other side closed") is the cause. */
function describeFailure(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  const cause: unknown = error instanceof Error ? error.cause : undefined
  if (!(cause instanceof Error)) return `Connection failed: ${message}`
  const code = (cause as { code?: unknown }).code
  return `Connection failed: ${cause.message}${typeof code === 'string' ? ` (${code})` : ''}`
}
