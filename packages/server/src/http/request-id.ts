import { randomBytes } from 'node:crypto'

/** `req_` and 16 hex digits; the server makes its own and never trusts a client's. */
export function generateRequestId(): string {
  return `req_${randomBytes(8).toString('hex')}`
}
