import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, resolve, sep } from 'node:path'
import type { Readable } from 'node:stream'

/**
 * Where export files live, by key (`exports/{export id}/{attempt}/{filename}`). The local
 * filesystem implements it here; an object store (S3 and the like) implements the same four
 * calls, with `list` by delimiter and `read` of a range as a ranged GET.
 */
export interface ArtifactStore {
  /** Stores the bytes under the key, replacing what was there; readers never see half a file. */
  put(key: string, bytes: Uint8Array): Promise<void>
  /** The stored file, or undefined when nothing is stored under the key. */
  open(key: string): Promise<StoredFile | undefined>
  /** Removes every key under the prefix (a folder: it ends with `/`); none is fine. */
  deletePrefix(prefix: string): Promise<void>
  /** The names one level below the prefix (folders and files alike). */
  list(prefix: string): Promise<string[]>
}

/** A stored file: its length, and its bytes (all, or one range of them) as a stream. */
export interface StoredFile {
  readonly bytes: number
  /** The bytes from `start` to `end` inclusive (a byte range as HTTP counts); all by default. */
  read(range?: { readonly start: number; readonly end: number }): Readable
}

const KEY = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*\/?$/

/** Files under `root`, one per key. */
export function createLocalArtifactStore(root: string): ArtifactStore {
  const base = resolve(root)
  const pathOf = (key: string): string => {
    if (!KEY.test(key) || key.split('/').some((part) => part === '.' || part === '..'))
      throw new Error(`invalid artifact key "${key}"`)
    const path = join(base, ...key.split('/').filter((part) => part !== ''))
    if (!path.startsWith(base + sep)) throw new Error(`artifact key "${key}" leaves the store`)
    return path
  }
  return {
    async put(key, bytes) {
      const path = pathOf(key)
      // Account data: folders and files for the server's user only.
      await mkdir(dirname(path), { recursive: true, mode: 0o700 })
      // Write aside, then rename: a reader (or a crash) never sees a partial file.
      const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`
      await writeFile(temporary, bytes, { mode: 0o600 })
      await rename(temporary, path)
    },
    async open(key) {
      const path = pathOf(key)
      try {
        const info = await stat(path)
        if (!info.isFile()) return undefined
        // Stored files never change in place (put writes aside and renames), so the size read
        // here holds for any range read later.
        return {
          bytes: info.size,
          read: (range) =>
            range === undefined
              ? createReadStream(path)
              : createReadStream(path, { start: range.start, end: range.end }),
        }
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
        throw error
      }
    },
    async deletePrefix(prefix) {
      if (!prefix.endsWith('/')) throw new Error(`a prefix ends with "/", got "${prefix}"`)
      // Retried where a writer adds a file to the folder while it is being removed (ENOTEMPTY).
      await rm(pathOf(prefix), { recursive: true, force: true, maxRetries: 5, retryDelay: 20 })
    },
    async list(prefix) {
      try {
        return (await readdir(pathOf(prefix))).sort()
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
        throw error
      }
    },
  }
}
