import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createFileKeyStore } from '../src/index.js'

let directory: string
beforeEach(() => {
  directory = join(mkdtempSync(join(tmpdir(), 'ticksupply-store-')), 'keys')
})
afterEach(() => {
  rmSync(join(directory, '..'), { recursive: true, force: true })
})

describe('createFileKeyStore', () => {
  it('keeps a key across store instances, as across process restarts', async () => {
    await createFileKeyStore({ directory }).set('export/2026-11-29', 'key-1')

    expect(await createFileKeyStore({ directory }).get('export/2026-11-29')).toBe('key-1')
    expect(await createFileKeyStore({ directory }).get('another')).toBeUndefined()
  })

  it('replaces a key and deletes it, leaving no files behind', async () => {
    const store = createFileKeyStore({ directory })

    await store.set('op', 'key-1')
    await store.set('op', 'key-2')
    expect(await store.get('op')).toBe('key-2')
    expect(readdirSync(directory)).toHaveLength(1)

    await store.delete('op')
    await store.delete('op')
    expect(await store.get('op')).toBeUndefined()
    expect(readdirSync(directory)).toEqual([])
  })

  it('writes each operation to its own file, never a temporary one left over', async () => {
    const store = createFileKeyStore({ directory })

    await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        store.set(`op-${String(index)}`, `k${String(index)}`),
      ),
    )

    const files = readdirSync(directory)
    expect(files).toHaveLength(20)
    expect(files.every((file) => /^[0-9a-f]{64}\.json$/.test(file))).toBe(true)
    const first = JSON.parse(readFileSync(join(directory, files[0] ?? ''), 'utf8')) as Record<
      string,
      unknown
    >
    expect(Object.keys(first).sort()).toEqual(['key', 'operationId', 'savedAtMs'])
  })

  it('adds one key for an operation however many stores (processes) add at once', async () => {
    const keys = Array.from({ length: 20 }, (_, index) => `key-${String(index)}`)
    const kept = await Promise.all(
      keys.map(async (key) => {
        const store = createFileKeyStore({ directory })
        if (store.add === undefined) throw new Error('the file store adds without replacing')
        return store.add('op', key)
      }),
    )
    expect(new Set(kept).size).toBe(1)
    expect(keys).toContain(kept[0])
    expect(await createFileKeyStore({ directory }).get('op')).toBe(kept[0])
    expect(readdirSync(directory)).toHaveLength(1)
  })

  it('refuses a missing directory option', () => {
    expect(() => createFileKeyStore({ directory: '' })).toThrow('`directory`')
  })
})
