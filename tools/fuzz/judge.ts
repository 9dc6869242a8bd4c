import type { FuzzCase } from './cases.js'
import type { Exchange } from './raw-http.js'

export type FindingKind =
  /** A 5xx: the server failed on input, which must never happen. */
  | 'server_error'
  /** An error status whose body is not the envelope `{"error":{"code","message"}}`. */
  | 'bare_error'
  /** A 2xx on a `/v1` route for a request without a valid API key. */
  | 'unauthenticated_success'
  /** An answer without `X-Request-Id`. */
  | 'no_request_id'
  /** A well-formed request the server closed the connection on without answering. */
  | 'no_answer'
  /** No answer in time. */
  | 'timeout'

export interface Finding {
  readonly kind: FindingKind
  readonly index: number
  readonly caseKind: string
  readonly request: string
  readonly status?: number
  readonly body?: string
}

const REQUEST_ID = /^req_[0-9a-f]{16}$/

/** What is wrong with the answer to one case, if anything. */
export function judge(fuzzCase: FuzzCase, exchange: Exchange): Finding[] {
  const found: Finding[] = []
  const report = (kind: FindingKind, status?: number, body?: string) => {
    found.push({
      kind,
      index: fuzzCase.index,
      caseKind: fuzzCase.kind,
      request: describeRequest(fuzzCase),
      ...(status === undefined ? {} : { status }),
      ...(body === undefined ? {} : { body: body.slice(0, 300) }),
    })
  }
  if (exchange.kind === 'timeout') {
    report('timeout')
    return found
  }
  if (exchange.kind === 'closed') {
    // Broken framing may be answered by closing; a well-formed request must get an answer.
    if (fuzzCase.keepAlive) report('no_answer')
    return found
  }
  const { status, headers, body } = exchange.response
  const text = body.toString('utf8')
  if (status >= 500) report('server_error', status, text)
  if (!REQUEST_ID.test(headers['x-request-id'] ?? '')) report('no_request_id', status)
  if (status >= 400 && fuzzCase.method !== 'HEAD' && !isEnvelope(headers['content-type'], text)) {
    report('bare_error', status, text)
  }
  if (status >= 200 && status < 300 && !fuzzCase.authenticated && aimsAtV1(fuzzCase)) {
    report('unauthenticated_success', status, text)
  }
  return found
}

function isEnvelope(contentType: string | undefined, text: string): boolean {
  if (!(contentType ?? '').startsWith('application/json')) return false
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return false
  }
  if (typeof parsed !== 'object' || parsed === null) return false
  const keys = Object.keys(parsed)
  if (keys.length !== 1 || keys[0] !== 'error') return false
  const error = (parsed as { error: unknown }).error
  if (typeof error !== 'object' || error === null) return false
  const { code, message, details } = error as {
    code?: unknown
    message?: unknown
    details?: unknown
  }
  const extra = Object.keys(error).filter((key) => !['code', 'message', 'details'].includes(key))
  return (
    typeof code === 'string' &&
    typeof message === 'string' &&
    extra.length === 0 &&
    (details === undefined ||
      (typeof details === 'object' && details !== null && !Array.isArray(details)))
  )
}

/**
 * Whether the case aimed at `/v1` however its target was spelled: generated from a `/v1`
 * operation, or a target that decodes to a `/v1` path.
 */
function aimsAtV1(fuzzCase: FuzzCase): boolean {
  if (fuzzCase.aimsAtV1) return true
  let path = fuzzCase.target.replace(/^[a-z]+:\/\/[^/]*/i, '')
  try {
    path = decodeURIComponent(path)
  } catch {
    // Broken encoding: judge the text as sent.
  }
  return /\/v1(\/|$|\?)/i.test(path)
}

/** The request's first line and its length, printable in a report. */
function describeRequest(fuzzCase: FuzzCase): string {
  const head = fuzzCase.bytes.subarray(0, Math.min(fuzzCase.bytes.length, 400)).toString('latin1')
  return `${JSON.stringify(head)} (${String(fuzzCase.bytes.length)} bytes)`
}
