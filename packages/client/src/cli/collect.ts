import type { OptionSpec, OptionValues } from './command.js'
import { optionalInteger } from './option-values.js'
import { UsageError } from './usage-error.js'

/** `--max N` of every list command. */
export const MAX_OPTION: OptionSpec = {
  type: 'string',
  placeholder: 'N',
  description: 'stop after N items (default: the whole list)',
}

/** `--max`, a whole number of at least 1; undefined without it. */
export function maxItems(options: OptionValues): number | undefined {
  const max = optionalInteger(options, 'max')
  if (max !== undefined && max < 1) throw new UsageError('--max must be at least 1')
  return max
}

/**
 * The items of a paged list, up to `max`. Stops reading pages once it has them: breaking out
 * of the iterator reads no page ahead.
 */
export async function collect<T>(items: AsyncIterable<T>, max: number | undefined): Promise<T[]> {
  const collected: T[] = []
  if (max === 0) return collected
  for await (const item of items) {
    collected.push(item)
    if (max !== undefined && collected.length >= max) break
  }
  return collected
}
