import { randomUUID } from 'node:crypto'
import type { IdempotentRequest } from '@ticksupply/idempotency'

/** A keyed POST as the engine sees it, under a fresh key unless `overrides` says otherwise. */
export function keyed(overrides: Partial<IdempotentRequest> = {}): IdempotentRequest {
  return {
    scope: 'acct_1',
    key: randomUUID(),
    method: 'POST',
    pathWithQuery: '/v1/things',
    body: Buffer.from('{"a":1}'),
    ...overrides,
  }
}
