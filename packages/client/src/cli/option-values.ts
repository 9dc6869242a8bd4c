import type { OptionValues } from './command.js'
import { UsageError } from './usage-error.js'

export function optionalString(options: OptionValues, name: string): string | undefined {
  const value = options[name]
  return typeof value === 'string' ? value : undefined
}

export function requiredString(options: OptionValues, name: string): string {
  const value = optionalString(options, name)
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`)
  return value
}

export function optionalInteger(options: OptionValues, name: string): number | undefined {
  const value = optionalString(options, name)
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(`--${name} must be a whole number, got "${value}"`)
  }
  return Number(value)
}

/**
 * A whole number that may pass 2^53 (an int64 id): a `bigint` where a number would round it.
 */
export function requiredInt64(options: OptionValues, name: string): number | bigint {
  const value = requiredString(options, name)
  if (!/^\d{1,19}$/.test(value) || BigInt(value) > 9_223_372_036_854_775_807n) {
    throw new UsageError(`--${name} must be a whole number of at most 19 digits, got "${value}"`)
  }
  return Number.isSafeInteger(Number(value)) ? Number(value) : BigInt(value)
}

export function requiredInteger(options: OptionValues, name: string): number {
  const value = optionalInteger(options, name)
  if (value === undefined) throw new UsageError(`--${name} is required`)
  return value
}

export function flag(options: OptionValues, name: string): boolean {
  return options[name] === true
}
