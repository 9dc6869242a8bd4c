import { ApiError } from '../domain/api-error.js'

/** One query parameter as a string; repeated, it is a 400 rather than a guess. */
export function queryParam(query: unknown, name: string): string | undefined {
  const value = (query as Record<string, unknown> | undefined)?.[name]
  if (value === undefined) return undefined
  if (typeof value !== 'string')
    throw new ApiError('invalid_argument', `${name} must be given once`)
  return value
}
