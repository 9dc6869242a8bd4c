import { describeReply } from '../api/describe-reply.js'
import { ExpectationFailed } from '../expectation.js'
import type { HttpReply } from '../http/http-client.js'

export const KEY_FORMAT_MESSAGE = 'Invalid idempotency key format'
export const MISMATCH_MESSAGE = 'Idempotency key reused with different request parameters'
export const IN_PROGRESS_MESSAGE = 'Request is still in progress. Please retry later.'

export function fail(expected: string, actual: string): never {
  throw new ExpectationFailed(expected, actual)
}

export function expectStatus(reply: HttpReply, status: number, what: string): void {
  if (reply.status !== status) fail(`${String(status)} for ${what}`, describeReply(reply))
}

interface Envelope {
  readonly code?: unknown
  readonly message?: unknown
}

function envelopeOf(reply: HttpReply): Envelope | undefined {
  try {
    const parsed = JSON.parse(reply.text) as { error?: Envelope } | null
    return typeof parsed?.error === 'object' ? parsed.error : undefined
  } catch {
    return undefined
  }
}

/** The status and the error envelope's `code` (and `message`, when given) of an answer. */
export function expectError(
  reply: HttpReply,
  expected: { readonly status: number; readonly code: string; readonly message?: string },
  what: string,
): void {
  const envelope = envelopeOf(reply)
  const ok =
    reply.status === expected.status &&
    envelope?.code === expected.code &&
    (expected.message === undefined || envelope.message === expected.message)
  if (!ok) {
    const message = expected.message === undefined ? '' : ` "${expected.message}"`
    fail(`${String(expected.status)} ${expected.code}${message} for ${what}`, describeReply(reply))
  }
}

export function expectKeyFormatError(reply: HttpReply, what: string): void {
  expectError(reply, { status: 400, code: 'invalid_argument', message: KEY_FORMAT_MESSAGE }, what)
}

export function expectMismatch(reply: HttpReply, what: string): void {
  expectError(reply, { status: 409, code: 'already_exists', message: MISMATCH_MESSAGE }, what)
}

export function isReplay(reply: HttpReply): boolean {
  return reply.header('idempotent-replayed') === 'true'
}

/**
 * The request's own answer: the operation ran for it, so it is not marked a replay. The
 * contract adds `Idempotent-Replayed: true` to replays and says nothing of originals: one that
 * says `false` is as much an original as one without the header.
 */
export function expectNotReplayed(reply: HttpReply, what: string): void {
  if (isReplay(reply)) {
    fail(
      `${what} to be answered by its own operation (not Idempotent-Replayed: true)`,
      describeReply(reply),
    )
  }
}

/** Whether a reply is the "still in progress" 409 with `Retry-After: 1`. */
export function isInProgress(reply: HttpReply): boolean {
  const envelope = envelopeOf(reply)
  return (
    reply.status === 409 &&
    envelope?.code === 'already_exists' &&
    envelope.message === IN_PROGRESS_MESSAGE &&
    reply.header('retry-after') === '1'
  )
}

/**
 * Everything the contract says about a replay: the original's status, body bytes,
 * `Content-Type` and `Location`; `Idempotent-Replayed: true`; `Original-Request` naming the
 * original's `X-Request-Id`; and an `X-Request-Id` of its own.
 */
export function replayDifferences(replay: HttpReply, original: HttpReply): string[] {
  const differences: string[] = []
  if (replay.status !== original.status) {
    differences.push(`status ${String(replay.status)} instead of ${String(original.status)}`)
  }
  if (!replay.body.equals(original.body)) {
    differences.push(
      `a body of ${String(replay.body.length)} bytes that differs from the original's ${String(original.body.length)}`,
    )
  }
  for (const name of ['content-type', 'location']) {
    const was = original.header(name)
    const now = replay.header(name)
    if (was !== now) differences.push(`${name} ${String(now)} instead of ${String(was)}`)
  }
  const replayed = replay.header('idempotent-replayed')
  if (replayed !== 'true') differences.push(`Idempotent-Replayed: ${String(replayed)}`)
  const originalId = original.header('x-request-id')
  const named = replay.header('original-request')
  if (originalId === undefined) differences.push('the original answer had no X-Request-Id')
  else if (named !== originalId)
    differences.push(`Original-Request: ${String(named)} instead of ${originalId}`)
  const ownId = replay.header('x-request-id')
  if (ownId === undefined) differences.push('no X-Request-Id of its own')
  else if (ownId === originalId) differences.push(`the original's X-Request-Id ${ownId} again`)
  return differences
}

export function expectReplayOf(replay: HttpReply, original: HttpReply, what: string): void {
  const differences = replayDifferences(replay, original)
  if (differences.length > 0) {
    fail(
      `${what} to replay the original ${String(original.status)} (same status, body bytes, Content-Type and Location; Idempotent-Replayed: true; Original-Request: ${String(original.header('x-request-id'))}; a new X-Request-Id)`,
      `${differences.join('; ')}: ${describeReply(replay)}`,
    )
  }
}

export function expectCount(actual: number, expected: number, what: string): void {
  if (actual !== expected) fail(`${String(expected)} ${what}`, String(actual))
}
