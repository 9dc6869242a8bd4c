/** Export times in every input form the API takes, to the nanosecond. */
import { describe, expect, it } from 'vitest'
import { parseNsTime } from '../src/domain/ns-time.js'

const TEN_AM = 1_705_312_800_000_000_000n

describe('parseNsTime', () => {
  it('reads one instant alike in every form RFC 3339 and ISO 8601 give it', () => {
    for (const form of [
      '2024-01-15T10:00:00Z',
      '2024-01-15t10:00:00z',
      '2024-01-15T10:00Z',
      '2024-01-15T10:00:00.000000000Z',
      '2024-01-15T11:00:00+01:00',
      '2024-01-15T05:30-04:30',
      TEN_AM,
      TEN_AM.toString(),
    ]) {
      expect(parseNsTime('start_time', form), String(form)).toBe(TEN_AM)
    }
    expect(parseNsTime('start_time', '2024-01-15T10:00:00.123456789Z')).toBe(TEN_AM + 123_456_789n)
  })

  it.each([
    '2024-01-15 10:00',
    '2024-01-15T10:00',
    '2024-01-15T10Z',
    '2024-01-15T10:00.5Z',
    '2024-01-15T10:00:00.1234567890Z',
    '2024-02-30T10:00:00Z',
    '2024-01-15T24:00:00Z',
    '2024-01-15T10:00:00+24:00',
    '2024-01-15X10:00:00Z',
  ])('refuses %s', (text) => {
    expect(() => parseNsTime('start_time', text)).toThrow(/start_time must be/)
  })
})
