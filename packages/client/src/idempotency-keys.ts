import { randomUUID } from 'node:crypto'

/**
 * The four UUID forms the server accepts, in any letter case (spec: "The key"): hyphenated,
 * simple, braced and URN.
 */
const HEX = '[0-9a-fA-F]'
const HYPHENATED = `${HEX}{8}-${HEX}{4}-${HEX}{4}-${HEX}{4}-${HEX}{12}`
const KEY_FORMS = new RegExp(
  `^(?:${HYPHENATED}|${HEX}{32}|\\{${HYPHENATED}\\}|[uU][rR][nN]:[uU][uU][iI][dD]:${HYPHENATED})$`,
)

/** A fresh key for one logical operation: a random (v4) UUID, as the contract recommends. */
export function createIdempotencyKey(): string {
  return randomUUID()
}

/**
 * Whether `value` is a key the server will accept (a UUID in one of its four forms). Only
 * spaces and tabs around it are the server's to ignore (the header's optional whitespace):
 * `trim()` would also take Unicode spaces, which the server refuses and fetch cannot send.
 */
export function isIdempotencyKey(value: string): boolean {
  return value.length <= 128 && KEY_FORMS.test(value.replace(/^[ \t]+|[ \t]+$/g, ''))
}
