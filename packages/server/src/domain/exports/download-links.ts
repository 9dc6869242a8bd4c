import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Queryable } from '../../db/database.js'

/**
 * Download links are `/downloads/{artifact id}?expires={unix seconds}&sig={hmac}`: an
 * HMAC-SHA256 over the artifact id and the expiry with the server's secret, so that the link
 * itself is the credential (no API key), cannot be pointed at another file and stops working
 * when it expires.
 */
export function signDownload(secret: string, artifactId: string, expiresAtS: number): string {
  return createHmac('sha256', secret)
    .update(`download:${artifactId}:${String(expiresAtS)}`)
    .digest('base64url')
}

export function downloadPath(secret: string, artifactId: string, expiresAtS: number): string {
  const sig = signDownload(secret, artifactId, expiresAtS)
  return `/downloads/${artifactId}?expires=${String(expiresAtS)}&sig=${sig}`
}

export type LinkCheck = 'valid' | 'invalid' | 'expired'

/** The signature is checked first (in constant time), so only a genuine link can be "expired". */
export function checkDownload(
  secret: string,
  artifactId: string,
  expires: string | undefined,
  sig: string | undefined,
  nowMs: number,
): LinkCheck {
  if (expires === undefined || sig === undefined || !/^\d{1,12}$/.test(expires)) return 'invalid'
  const expected = Buffer.from(signDownload(secret, artifactId, Number(expires)))
  const given = Buffer.from(sig)
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'invalid'
  return Number(expires) * 1000 <= nowMs ? 'expired' : 'valid'
}

/**
 * The signing secret: the configured one, else one generated at first start and kept in the
 * database, so that links survive restarts and every instance on the database signs alike.
 */
export async function loadSigningSecret(
  db: Queryable,
  configured: string | undefined,
  now: number,
): Promise<string> {
  if (configured !== undefined) return configured
  // Of two instances starting together, the first insert wins and both read the winner.
  await db.run(
    `INSERT INTO server_secrets (name, value, created_at) VALUES ('download_signing', ?, ?)
     ON CONFLICT (name) DO NOTHING`,
    [randomBytes(32).toString('base64url'), now],
  )
  const row = await db.get<{ value: string }>(
    `SELECT value FROM server_secrets WHERE name = 'download_signing'`,
  )
  if (row === undefined) throw new Error('the download signing secret vanished')
  return row.value
}
