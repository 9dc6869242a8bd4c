import { UnexpectedResponseError } from '../errors/unexpected-response-error.js'
import { responseOf } from '../response-metadata.js'

/**
 * Checks that a result has the fields a table or detail view reads, as paths such as
 * `datastream.exchange`, each a string or a number, and answers it unchanged. A success body
 * of the wrong shape would otherwise crash the rendering, reported as a bug of the command
 * line (exit 1) when it is the server's answer that is wrong (exit 15).
 *
 * @param source the value the client returned, for its status and request id (`responseOf`)
 */
export function expectFields<T>(
  value: T,
  what: string,
  paths: readonly string[],
  source: unknown = value,
): T {
  for (const path of paths) {
    let current: unknown = value
    for (const name of path.split('.')) {
      current = isRecord(current) ? current[name] : undefined
    }
    if (typeof current !== 'string' && typeof current !== 'number') {
      const response = responseOf(source)
      throw new UnexpectedResponseError({
        // Only a success reaches a view; a value without metadata came out of a list.
        status: response?.status ?? 200,
        requestId: response?.requestId,
        message: `The answer is not ${what}: it has no \`${path}\``,
      })
    }
  }
  return value
}

/** {@link expectFields} for every row of a list. */
export function expectRows<T>(
  rows: readonly T[],
  what: string,
  paths: readonly string[],
  source: unknown = rows,
): readonly T[] {
  for (const row of rows) expectFields(row, what, paths, source)
  return rows
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
