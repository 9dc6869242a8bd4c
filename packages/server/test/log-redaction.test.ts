/**
 * What the request log keeps of a URL: the path and the harmless query parameters, never a
 * signature, a token, a password or an API key. A real server process logs at info to its
 * stdout, which the test reads.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SpawnedServer } from './support/server.js'
import { eventually, freshDatabase, spawnServer } from './support/server.js'
import { EXPORT_ENV, runExport } from './support/exports-helpers.js'
import { sendTarget } from './support/raw-http.js'

describe('the request log', () => {
  let server: SpawnedServer
  let cleanup: () => void

  beforeAll(async () => {
    const database = await freshDatabase()
    cleanup = database.cleanup
    server = await spawnServer({
      ...EXPORT_ENV,
      DATABASE_URL: database.url,
      ARTIFACTS_DIR: `${database.dir}/artifacts`,
      LOG_LEVEL: 'info',
    })
  })
  afterAll(async () => {
    server.kill('SIGTERM')
    await server.exited
    cleanup()
  })

  /** The log lines that mention the path, once at least `count` of them were written. */
  async function linesAbout(path: string, count: number): Promise<string[]> {
    const lines = () =>
      server
        .stdout()
        .split('\n')
        .filter((line) => line.includes(path))
    await eventually(() => lines().length >= count)
    return lines()
  }

  it('logs a signed download link by its path, without its signature', async () => {
    const { download } = await runExport(server.url)
    const link = new URL(download.artifacts[0]?.url ?? '')
    const sig = link.searchParams.get('sig') ?? ''
    expect(sig.length).toBeGreaterThan(20)
    const response = await fetch(link)
    expect(response.status).toBe(200)
    await response.arrayBuffer()
    // A wrong signature is logged just as carefully: it may be a near miss of the right one.
    const forged = new URL(link)
    forged.searchParams.set('sig', `${sig.slice(0, -2)}zz`)
    expect((await fetch(forged)).status).toBe(403)

    const lines = await linesAbout(link.pathname, 2)
    expect(lines.length).toBeGreaterThanOrEqual(2)
    expect(lines.some((line) => line.includes('"msg":"request completed"'))).toBe(true)
    const expires = link.searchParams.get('expires') ?? ''
    expect(lines.some((line) => line.includes(`expires=${expires}`))).toBe(true)
    expect(server.stdout()).not.toContain(sig)
    expect(server.stdout()).not.toContain(sig.slice(0, -2))
  })

  it('redacts every credential-like query parameter and the userinfo of an absolute-form target', async () => {
    const secrets = {
      sig: 'SECRETsig0001',
      signature: 'SECRETsig0002',
      token: 'SECRETtok0003',
      access_token: 'SECRETtok0004',
      key: 'SECRETkey0005',
      api_key: 'SECRETkey0006',
      apikey: 'SECRETkey0007',
      'X-Api-Key': 'SECRETkey0008',
      password: 'SECRETpw00009',
      client_secret: 'SECRETsec0010',
    }
    const query = Object.entries(secrets)
      .map(([name, value]) => `${name}=${value}`)
      .join('&')
    const path = '/v1/redaction-probe'
    await sendTarget(server.url, 'GET', `${path}?visible=kept&${query}`)
    // A parameter name spelled with percent-encoding is the same parameter to the server.
    await sendTarget(server.url, 'GET', `${path}?%73ig=SECRETsig0011&visible=kept`)
    await sendTarget(server.url, 'GET', `http://someone:SECRETpw00012@x${path}?visible=kept`)
    // One line each.
    const lines = await linesAbout(path, 3)
    expect(lines.filter((line) => line.includes('visible=kept')).length).toBe(3)
    for (const value of [...Object.values(secrets), 'SECRETsig0011', 'SECRETpw00012'])
      expect(server.stdout()).not.toContain(value)
    expect(server.stdout()).not.toContain('SECRET')
  })
})
