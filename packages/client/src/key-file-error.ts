/**
 * A key file of {@link createFileKeyStore} that cannot be used: not JSON (edited or damaged by
 * hand), or another operation's. The store does not delete it: it may hold the only copy of a
 * key whose operation has run, and a fresh key could run that operation a second time.
 */
export class KeyFileError extends Error {
  override readonly name = 'KeyFileError'
  readonly code = 'key_file_invalid'
  /** The file in question. */
  readonly path: string

  constructor(path: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause })
    this.path = path
  }
}
