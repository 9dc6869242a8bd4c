import { renderErrorEnvelope } from '@ticksupply/idempotency'

export const JSON_TYPE = 'application/json; charset=utf-8'

/** `{"error":{"code","message","details"?}}`; `details` only when it has something. */
export function renderError(
  code: string,
  message: string,
  details?: Readonly<Record<string, unknown>>,
): string {
  if (details === undefined || Object.keys(details).length === 0)
    return renderErrorEnvelope(code, message)
  return JSON.stringify({ error: { code, message, details } })
}
