/**
 * Exact decimal numbers for `decimal(N)` columns: `unscaled × 10^-scale` with a bigint, so that
 * prices never pass through binary floating point (0.1 + 0.2 is 0.3 here).
 */
export interface ExactDecimal {
  readonly kind: 'decimal'
  readonly unscaled: bigint
  readonly scale: number
}

/** Fractional digits a quotient keeps: more than any column's (38), so a later rounding decides. */
export const QUOTIENT_SCALE = 40

const DECIMAL_TEXT = /^([-+]?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d{1,4}))?$/

export function isExactDecimal(value: unknown): value is ExactDecimal {
  return (
    typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'decimal'
  )
}

export function exactDecimal(unscaled: bigint, scale: number): ExactDecimal {
  return { kind: 'decimal', unscaled, scale }
}

/** `-12.5`, `3`, `1e-3`, `.5`: the exact value; undefined for anything else. */
export function parseExactDecimal(text: string): ExactDecimal | undefined {
  const match = DECIMAL_TEXT.exec(text.trim())
  if (match === null) return undefined
  const [, sign = '', whole = '', fraction = '', exponent = '0'] = match
  if (whole === '' && fraction === '') return undefined
  let unscaled = BigInt(`${whole}${fraction}` === '' ? '0' : `${whole}${fraction}`)
  let scale = fraction.length - Number(exponent)
  if (scale < 0) {
    unscaled *= 10n ** BigInt(-scale)
    scale = 0
  }
  return exactDecimal(sign === '-' ? -unscaled : unscaled, scale)
}

function aligned(a: ExactDecimal, b: ExactDecimal): [bigint, bigint, number] {
  const scale = Math.max(a.scale, b.scale)
  return [
    a.unscaled * 10n ** BigInt(scale - a.scale),
    b.unscaled * 10n ** BigInt(scale - b.scale),
    scale,
  ]
}

export function addDecimals(a: ExactDecimal, b: ExactDecimal): ExactDecimal {
  const [x, y, scale] = aligned(a, b)
  return exactDecimal(x + y, scale)
}

export function subtractDecimals(a: ExactDecimal, b: ExactDecimal): ExactDecimal {
  const [x, y, scale] = aligned(a, b)
  return exactDecimal(x - y, scale)
}

export function multiplyDecimals(a: ExactDecimal, b: ExactDecimal): ExactDecimal {
  return exactDecimal(a.unscaled * b.unscaled, a.scale + b.scale)
}

/** Rounds half away from zero to `scale` fractional digits. */
export function roundExactDecimal(value: ExactDecimal, scale: number): ExactDecimal {
  if (value.scale <= scale)
    return exactDecimal(value.unscaled * 10n ** BigInt(scale - value.scale), scale)
  const divisor = 10n ** BigInt(value.scale - scale)
  const negative = value.unscaled < 0n
  const magnitude = negative ? -value.unscaled : value.unscaled
  let quotient = magnitude / divisor
  if ((magnitude % divisor) * 2n >= divisor) quotient += 1n
  return exactDecimal(negative ? -quotient : quotient, scale)
}

/** `a / b` to {@link QUOTIENT_SCALE} places, rounded half away from zero; undefined for `/ 0`. */
export function divideDecimals(a: ExactDecimal, b: ExactDecimal): ExactDecimal | undefined {
  if (b.unscaled === 0n) return undefined
  // a/b = (ua / ub) × 10^(sb - sa): scale the numerator so that the quotient has one digit more
  // than wanted, then round that digit away.
  const shift = QUOTIENT_SCALE + 1 + b.scale - a.scale
  const numerator =
    shift >= 0 ? a.unscaled * 10n ** BigInt(shift) : a.unscaled / 10n ** BigInt(-shift)
  return roundExactDecimal(exactDecimal(numerator / b.unscaled, QUOTIENT_SCALE + 1), QUOTIENT_SCALE)
}

export function negateDecimal(value: ExactDecimal): ExactDecimal {
  return exactDecimal(-value.unscaled, value.scale)
}

export function compareDecimals(a: ExactDecimal, b: ExactDecimal): number {
  const [x, y] = aligned(a, b)
  return x < y ? -1 : x > y ? 1 : 0
}

/** The shortest exact text: `12.5`, `-3`, `0`; no exponent, trailing zeros trimmed. */
export function formatExactDecimal(value: ExactDecimal): string {
  const negative = value.unscaled < 0n
  const digits = (negative ? -value.unscaled : value.unscaled)
    .toString()
    .padStart(value.scale + 1, '0')
  const whole = value.scale === 0 ? digits : digits.slice(0, -value.scale)
  const fraction = value.scale === 0 ? '' : digits.slice(-value.scale).replace(/0+$/, '')
  const body = fraction === '' ? whole : `${whole}.${fraction}`
  return negative && /[1-9]/.test(body) ? `-${body}` : body
}

/** How many digits the unscaled value has (its precision at its scale). */
export function decimalDigits(value: ExactDecimal): number {
  return (value.unscaled < 0n ? -value.unscaled : value.unscaled).toString().length
}
