import { describe, expect, it } from 'vitest'
import type { RecordView } from '../../src/store/claim-decision.js'
import { decideClaim } from '../../src/store/claim-decision.js'
import { CLAIM_DECISION_TABLE, describeCase } from '../support/claim-decision-table.js'

const NOW = 1_767_225_600_000
const FINGERPRINT = 'f'.repeat(64)

describe('decideClaim', () => {
  for (const entry of CLAIM_DECISION_TABLE) {
    it(`decides ${entry.expected} for ${describeCase(entry)}`, () => {
      const { record } = entry
      let view: RecordView | undefined
      if (record !== undefined) {
        const fingerprint = record.sameFingerprint ? FINGERPRINT : 'e'.repeat(64)
        const expiresAt = NOW + record.expiresInMs
        view =
          record.state === 'completed'
            ? {
                state: 'completed',
                fingerprint,
                expiresAt,
                response: { status: 201, headers: {}, body: Buffer.from('x'), requestId: 'r' },
              }
            : {
                state: 'in_progress',
                fingerprint,
                expiresAt,
                holderAlive: (record.leaseEndsInMs ?? 0) > 0,
              }
      }
      expect(decideClaim(view, FINGERPRINT, NOW).kind).toBe(entry.expected)
    })
  }
})
