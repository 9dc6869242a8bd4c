/**
 * The idempotency policy as the API publishes it (the IETF draft's "an API publishes its
 * idempotency policy"), in words for people and as numbers for tools, from the values the
 * server runs with.
 */
export interface IdempotencyPolicy {
  /** How long a key's record lives from its first claim (`IDEMPOTENCY_TTL_SECONDS`). */
  readonly idempotencyTtlMs: number
  /** How long a duplicate waits for a request in progress (`IDEMPOTENCY_WAIT_MS`). */
  readonly idempotencyWaitMs: number
  /** A claim's lease, after which a dead holder's key is free (`IDEMPOTENCY_LEASE_MS`). */
  readonly idempotencyLeaseMs: number
  /** The server's deadline per request (`REQUEST_DEADLINE_MS`). */
  readonly requestDeadlineMs: number
}

// No days: a key's life reads as 24 hours, the unit of the public documentation.
const UNITS: readonly [ms: number, singular: string][] = [
  [3_600_000, 'hour'],
  [60_000, 'minute'],
  [1_000, 'second'],
]

/** `24 hours`, `3 seconds`, `1500 ms`: the largest unit the duration is a whole number of. */
export function describeDuration(ms: number): string {
  for (const [unitMs, unit] of UNITS) {
    if (ms >= unitMs && ms % unitMs === 0) {
      const count = ms / unitMs
      return `${String(count)} ${unit}${count === 1 ? '' : 's'}`
    }
  }
  return `${String(ms)} ms`
}

/** The order in which a request is checked; nothing before the claim stores or uses a key. */
export const ORDER_OF_CHECKS = [
  'authentication (`401`)',
  'rate limit (`429`, with `Retry-After`)',
  'the `Idempotency-Key` format (`400`)',
  'request validation: malformed JSON, a wrong or missing field (`400`)',
  'the claim of the key, then the operation',
] as const

/** The `Idempotency-Key` header's description. */
export function describeIdempotencyKey(policy: IdempotencyPolicy): string {
  return [
    'A UUID naming this operation: hyphenated, simple (32 hex digits), braced or URN (`urn:uuid:`), in any letter case, at most 128 characters; all spellings of one UUID are one key. Keys belong to the account: its API keys share them.',
    `A retry with the same key, method, path (query included) and body gets the first answer replayed, byte for byte, with \`Idempotent-Replayed: true\` and \`Original-Request\`. The same key with another request is a \`409\` \`Idempotency key reused with different request parameters\`.`,
    `A retry while the first request still runs waits up to ${describeDuration(policy.idempotencyWaitMs)} for it: then it gets the replay, or a \`409\` \`Request is still in progress. Please retry later.\` with \`Retry-After: 1\`.`,
    `Stored and replayed: every answer the operation gives below 500, errors included, except \`408\`. A \`5xx\` or a \`408\` \`request_timeout\` (past the server's deadline of ${describeDuration(policy.requestDeadlineMs)}) is not stored: the operation's writes rolled back, and a retry with the key runs it again.`,
    `A key lives ${describeDuration(policy.idempotencyTtlMs)} from its first use; after that it is a new key.`,
    `Checked in this order, and nothing is stored before the claim, so a client may fix its request (or wait out a \`429\`) and retry with the same key: ${ORDER_OF_CHECKS.map((check, index) => `${String(index + 1)}. ${check}`).join('; ')}.`,
    'Honoured on `POST` and `DELETE`; every other method (`GET`, `HEAD`, `PUT`, `PATCH`, `OPTIONS`) ignores it, unchecked. Without it a request runs and nothing is stored.',
  ].join('\n\n')
}

/** The API's description (`info.description`), the policy and the limits included. */
export function describeApi(
  policy: IdempotencyPolicy & { rateLimitPerMinute: number; rateLimitPerHour: number },
): string {
  return [
    'Market-data recording and exports.',
    '## Idempotency',
    `Every \`POST\` and \`DELETE\` is safe to retry with an \`Idempotency-Key\` header (a UUID, one per logical operation, reused on each retry). The same key and request replay the first answer; a key lives ${describeDuration(policy.idempotencyTtlMs)} from its first use; a retry that finds the first request still running waits up to ${describeDuration(policy.idempotencyWaitMs)} for it. Answers below 500 are stored and replayed, errors included; a \`5xx\` or a \`408\` is not stored, so a retry runs the operation again. Keys belong to the account.`,
    `Order of checks: ${ORDER_OF_CHECKS.map((check, index) => `${String(index + 1)}. ${check}`).join('; ')}. Nothing before the claim stores anything or uses up the key.`,
    `A request whose holder died frees its key when the operation's transaction ends, and at the latest when its lease of ${describeDuration(policy.idempotencyLeaseMs)} lapses. The same policy, as numbers, is in \`info.x-idempotency-policy\`.`,
    '## Limits',
    `Every request has a deadline of ${describeDuration(policy.requestDeadlineMs)}: past it the answer is \`408\` \`request_timeout\` and the operation's writes roll back. Rate limits are per account, token buckets of ${String(policy.rateLimitPerMinute)} requests a minute and ${String(policy.rateLimitPerHour)} an hour (\`X-RateLimit-*\` on every authenticated answer); a \`429\` says when to retry.`,
    '## Numbers',
    'int64 values (export times in nanoseconds, datastream ids, byte counts) are JSON integers, written exactly: parse them as 64-bit integers, not doubles. Other times are RFC 3339 UTC.',
  ].join('\n\n')
}

/** The policy as numbers, for tools: `info.x-idempotency-policy`. */
export function idempotencyPolicyExtension(policy: IdempotencyPolicy): {
  'x-idempotency-policy': Record<string, unknown>
} {
  return {
    'x-idempotency-policy': {
      header: 'Idempotency-Key',
      methods: ['POST', 'DELETE'],
      key_format: 'uuid',
      key_max_length: 128,
      scope: 'account',
      fingerprint: ['method', 'path with query', 'body bytes'],
      key_lifetime_seconds: policy.idempotencyTtlMs / 1000,
      in_progress_wait_ms: policy.idempotencyWaitMs,
      lease_ms: policy.idempotencyLeaseMs,
      request_deadline_ms: policy.requestDeadlineMs,
      stored_statuses: 'every status below 500 except 408',
      not_stored_statuses: ['408', '5xx'],
      order_of_checks: [
        'authentication',
        'rate_limit',
        'key_format',
        'request_validation',
        'claim',
      ],
    },
  }
}
