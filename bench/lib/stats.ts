/** Small statistics over samples. */

export function median(values: readonly number[]): number {
  return quantile(values, 0.5)
}

/** The `q` quantile (0..1) by the nearest-rank method; NaN for no values. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank] as number
}

export function max(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : Math.max(...values)
}

export function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0)
}
