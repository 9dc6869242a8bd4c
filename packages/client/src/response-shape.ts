import { UnexpectedResponseError } from './errors/unexpected-response-error.js'
import type { ResponseMetadata } from './response-metadata.js'

/** What a method's success body is at its top: a JSON object, or an array. */
export type ResponseShape = 'object' | 'array'

/**
 * Throws an {@link UnexpectedResponseError} unless `value` has the shape at its top. A light
 * check, not a validation of every field: it keeps a wrong answer (a proxy's `null`, an array
 * where a resource belongs) from reaching the caller typed as what it is not.
 */
export function expectShape(
  value: unknown,
  shape: ResponseShape,
  response: Pick<ResponseMetadata, 'status' | 'requestId'>,
): void {
  const isArray = Array.isArray(value)
  const matches =
    shape === 'array' ? isArray : typeof value === 'object' && value !== null && !isArray
  if (matches) return
  throw new UnexpectedResponseError({
    status: response.status,
    requestId: response.requestId,
    message: `HTTP ${String(response.status)} with ${describe(value)} where the API answers ${shape === 'array' ? 'an array' : 'an object'}`,
  })
}

function describe(value: unknown): string {
  if (value === undefined) return 'no body'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}
