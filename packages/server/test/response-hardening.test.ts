/**
 * What every answer says about itself, and what the server leaves on disk: `nosniff` on every
 * response, `no-store` on every answer about an account, a warning when download links would
 * take their origin from the client, and files only the server's user can read.
 */
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from './support/server.js'
import {
  datastreamIds,
  freshDatabase,
  newKey,
  send,
  sendRaw,
  spawnServer,
  startServer,
  tempDatabase,
} from './support/server.js'
import { EXPORT_ENV, runExport } from './support/exports-helpers.js'
import { sendTarget } from './support/raw-http.js'

describe('response headers', () => {
  let server: TestServer
  let downloadUrl: string
  const nextDatastream = datastreamIds(100)

  beforeAll(async () => {
    server = await startServer(EXPORT_ENV)
    const { download } = await runExport(server.url)
    downloadUrl = download.artifacts[0]?.url ?? ''
  })
  afterAll(async () => {
    await server.close()
  })

  /** One of each kind of answer, named; `account` when it is about an account. */
  async function answers(): Promise<
    { name: string; status: number; account: boolean; header: (name: string) => string | null }[]
  > {
    const url = server.url
    const key = newKey()
    const datastream = nextDatastream()
    const fetched = [
      ['catalog', true, await send(`${url}/v1/exchanges`)],
      ['no API key', true, await send(`${url}/v1/exchanges`, { apiKey: null })],
      ['unknown /v1 route', true, await send(`${url}/v1/nope`)],
      ['unknown route', true, await send(`${url}/nope`)],
      ['bad JSON', true, await send(`${url}/v1/subscriptions`, { rawBody: '{' })],
      [
        'created',
        true,
        await send(`${url}/v1/subscriptions`, { key, body: { datastream_id: datastream } }),
      ],
      [
        'replay',
        true,
        await send(`${url}/v1/subscriptions`, { key, body: { datastream_id: datastream } }),
      ],
      ['billing', true, await send(`${url}/v1/billing/summary`)],
      ['OpenAPI document', false, await send(`${url}/openapi.json`, { apiKey: null })],
      ['Swagger UI', false, await send(`${url}/docs/static/index.html`, { apiKey: null })],
      ['metrics', false, await send(`${url}/metrics`, { apiKey: null })],
      ['download', false, await send(downloadUrl, { apiKey: null })],
      ['forged download', false, await send(`${downloadUrl}x`, { apiKey: null })],
    ] as const
    const raw = [
      ['bad percent-encoding', false, await sendTarget(url, 'GET', '/v1/%zz')],
      ['not HTTP', false, await sendRaw(url, 'NOT HTTP AT ALL')],
    ] as const
    return [
      ...fetched.map(([name, account, answer]) => ({
        name,
        status: answer.status,
        account,
        header: (header: string) => answer.headers.get(header),
      })),
      ...raw.map(([name, account, answer]) => ({
        name,
        status: answer.status,
        account,
        header: (header: string) => answer.headers[header] ?? null,
      })),
    ]
  }

  it('says X-Content-Type-Options: nosniff on every answer: API, errors, docs, downloads, bytes that are not HTTP', async () => {
    const all = await answers()
    expect(all.map((answer) => answer.status)).toEqual([
      // The path with broken percent-encoding is an unknown route, sent without a key: 401.
      200, 401, 404, 404, 400, 201, 201, 200, 200, 200, 200, 200, 403, 401, 400,
    ])
    for (const answer of all)
      expect(answer.header('x-content-type-options'), answer.name).toBe('nosniff')
  })

  it('says Cache-Control: no-store on every answer of an account route, errors and replays included', async () => {
    const all = await answers()
    expect(all.filter((answer) => answer.account)).toHaveLength(8)
    for (const answer of all.filter((each) => each.account))
      expect(answer.header('cache-control'), answer.name).toBe('no-store')
    expect(all.find((answer) => answer.name === 'download')?.header('cache-control')).toMatch(
      /no-store/,
    )
  })
})

describe('download links in production', () => {
  it('warns at start when NODE_ENV=production and PUBLIC_BASE_URL is unset, and not when it is set', async () => {
    const database = await freshDatabase()
    try {
      const env = {
        DATABASE_URL: database.url,
        ARTIFACTS_DIR: join(database.dir, 'artifacts'),
        NODE_ENV: 'production',
        LOG_LEVEL: 'warn',
      }
      const unset = await spawnServer(env)
      unset.kill('SIGTERM')
      await unset.exited
      const set = await spawnServer({ ...env, PUBLIC_BASE_URL: 'https://api.example.com' })
      set.kill('SIGTERM')
      await set.exited
      const warnings = (output: string) =>
        output
          .split('\n')
          .filter((line) => line.includes('"level":40') && line.includes('PUBLIC_BASE_URL'))
      expect(warnings(unset.stdout())).toHaveLength(1)
      expect(warnings(set.stdout())).toHaveLength(0)
    } finally {
      database.cleanup()
    }
  })
})

const modeOf = (path: string) => statSync(path).mode & 0o777

/** Every directory and file under `root`, itself included. */
function walk(root: string): { directories: string[]; files: string[] } {
  const directories = [root]
  const files: string[] = []
  for (const entry of readdirSync(root, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name)
    if (entry.isDirectory()) directories.push(path)
    else files.push(path)
  }
  return { directories, files }
}

describe('files on disk', () => {
  it('creates the SQLite file, its -wal and -shm, and its directory for the server user only', async () => {
    const scratch = tempDatabase()
    const dataDir = join(scratch.dir, 'data', 'nested')
    const filename = join(dataDir, 'ticksupply.db')
    const server = await startServer({
      DATABASE_URL: `sqlite:${filename}`,
      ARTIFACTS_DIR: join(scratch.dir, 'artifacts'),
    })
    try {
      // A write, so that the WAL and its index exist.
      expect(
        (await send(`${server.url}/v1/subscriptions`, { body: { datastream_id: 1 } })).status,
      ).toBe(201)
      expect(modeOf(join(scratch.dir, 'data')).toString(8)).toBe('700')
      expect(modeOf(dataDir).toString(8)).toBe('700')
      for (const suffix of ['', '-wal', '-shm'])
        expect(modeOf(`${filename}${suffix}`).toString(8), `ticksupply.db${suffix}`).toBe('600')
    } finally {
      await server.close()
      scratch.cleanup()
    }
  })

  it('creates the export artifacts directory, its folders and its files for the server user only', async () => {
    const database = await freshDatabase()
    const artifactsDir = join(database.dir, 'exports-root', 'artifacts')
    const server = await startServer({
      ...EXPORT_ENV,
      DATABASE_URL: database.url,
      ARTIFACTS_DIR: artifactsDir,
    })
    try {
      const { download } = await runExport(server.url)
      const { directories, files } = walk(artifactsDir)
      expect(files.length).toBe(download.count)
      expect(directories.length).toBeGreaterThanOrEqual(3)
      expect(modeOf(join(database.dir, 'exports-root')).toString(8)).toBe('700')
      for (const directory of directories)
        expect(modeOf(directory).toString(8), directory).toBe('700')
      for (const file of files) expect(modeOf(file).toString(8), file).toBe('600')
    } finally {
      await server.close()
      database.cleanup()
    }
  })
})
