import { createHash, randomBytes } from 'node:crypto'
import { link, mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { KeyFileError } from './key-file-error.js'
import type { KeyStore } from './key-store.js'

export interface FileKeyStoreOptions {
  /** The folder for the key files; created on first use. */
  readonly directory: string
}

interface KeyFile {
  readonly operationId: string
  readonly key: string
  /** When the key was saved (epoch ms), for people clearing out old files. */
  readonly savedAtMs: number
}

/**
 * A key store on disk: one small JSON file per operation in `directory`, named after a
 * SHA-256 of the operation id (so any id is a safe file name and no two ids share a file).
 *
 * Each write goes to a temporary file that is flushed to disk and then renamed over the real
 * one. A rename within one folder is atomic on POSIX file systems, so a crash leaves either the
 * old file or the new one, never a torn one that would lose the key.
 *
 * `get` throws a {@link KeyFileError} for a file that is not JSON or is another operation's,
 * and leaves the file alone.
 *
 * @throws TypeError when `directory` is not a non-empty string.
 */
export function createFileKeyStore(options: FileKeyStoreOptions): KeyStore {
  const given = options as { directory?: unknown }
  if (typeof given.directory !== 'string' || given.directory === '') {
    throw new TypeError('Expected `directory` to be a non-empty string.')
  }
  const { directory } = options
  const fileOf = (operationId: string): string =>
    join(directory, `${createHash('sha256').update(operationId).digest('hex')}.json`)

  /** The key file's content in a new temporary file beside `target`, on disk. */
  const writeTemporary = async (target: string, content: KeyFile): Promise<string> => {
    await mkdir(directory, { recursive: true })
    const temporary = `${target}.${randomBytes(6).toString('hex')}.tmp`
    const handle = await open(temporary, 'wx', 0o600)
    try {
      await handle.writeFile(JSON.stringify(content))
      // Flushed before the rename or link: otherwise a power cut could leave the name
      // pointing at an empty file.
      await handle.sync()
    } finally {
      await handle.close()
    }
    return temporary
  }

  const store: KeyStore = {
    async get(operationId) {
      let text: string
      try {
        text = await readFile(fileOf(operationId), 'utf8')
      } catch (error) {
        if (isNotFound(error)) return undefined
        throw error
      }
      const path = fileOf(operationId)
      let file: Partial<KeyFile> | null
      try {
        file = JSON.parse(text) as Partial<KeyFile> | null
      } catch (error) {
        throw new KeyFileError(
          path,
          `Key file ${path} of operation "${operationId}" is not valid JSON (${(error as Error).message}); repair or remove it (a new key could run the operation twice)`,
          error,
        )
      }
      // A hash collision is out of reach, but a file copied in by hand is not.
      if (file?.operationId !== operationId || typeof file.key !== 'string') {
        throw new KeyFileError(path, `Key file ${path} does not belong to "${operationId}"`)
      }
      return file.key
    },

    async set(operationId, key) {
      const target = fileOf(operationId)
      const temporary = await writeTemporary(target, { operationId, key, savedAtMs: Date.now() })
      try {
        await rename(temporary, target)
      } catch (error) {
        await rm(temporary, { force: true })
        throw error
      }
    },

    // A hard link to a name that exists fails: the first process to link its file wins, and
    // the others read its key.
    async add(operationId, key) {
      const target = fileOf(operationId)
      const temporary = await writeTemporary(target, { operationId, key, savedAtMs: Date.now() })
      try {
        await link(temporary, target)
        return key
      } catch (error) {
        if ((error as { code?: unknown } | null)?.code !== 'EEXIST') throw error
        const saved = await store.get(operationId)
        if (saved === undefined) throw error
        return saved
      } finally {
        await rm(temporary, { force: true })
      }
    },

    async delete(operationId) {
      await rm(fileOf(operationId), { force: true })
    },
  }
  return store
}

function isNotFound(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'ENOENT'
}
