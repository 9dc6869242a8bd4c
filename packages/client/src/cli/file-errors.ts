/** A local file could not be read or written (exit 19); the message says which and why. */
export class LocalFileError extends Error {
  override readonly name = 'LocalFileError'
}

const REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'it is a directory',
  EEXIST: 'a file is in the way',
  ENOSPC: 'no space left on the device',
  EMFILE: 'too many open files',
}

/** Why the file system refused, e.g. `permission denied (EACCES)`; undefined for other errors. */
export function fileSystemReason(error: unknown): string | undefined {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined
  if (typeof code !== 'string' || !Object.hasOwn(REASONS, code)) return undefined
  return `${REASONS[code] ?? code} (${code})`
}

/** Runs `work`; a file-system failure becomes a {@link LocalFileError} that names `what`. */
export async function withLocalFiles<T>(what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (error) {
    const reason = fileSystemReason(error)
    if (reason === undefined) throw error
    throw new LocalFileError(`${what}: ${reason}`)
  }
}
