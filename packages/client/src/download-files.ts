import { createWriteStream } from 'node:fs'
import { mkdir, rename, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import { combineSignals } from './combine-signals.js'
import { createApiError } from './errors/create-api-error.js'
import { NetworkError } from './errors/network-error.js'
import { TimeoutError } from './errors/timeout-error.js'
import { UnexpectedResponseError } from './errors/unexpected-response-error.js'
import type { ExportDownload } from './types.js'
import { USER_AGENT } from './version.js'

/** Told as the bytes of an export's files arrive. */
export interface DownloadProgress {
  /** The file being written, and its place among the export's files (from 1). */
  readonly filename: string
  readonly file: number
  readonly files: number
  /** Bytes of this file on disk so far, and its size. */
  readonly fileBytes: number
  readonly fileTotalBytes: number
  /** Bytes of all files on disk so far, and their size. */
  readonly bytes: number
  readonly totalBytes: number
}

export interface DownloadFilesOptions {
  /** Stops the download; a partial file stays, and the next download resumes it. */
  readonly signal?: AbortSignal
  readonly onProgress?: (progress: DownloadProgress) => void
  /** Resolves relative links (an API behind a path prefix). */
  readonly baseUrl?: string
  /** @default globalThis.fetch */
  readonly fetch?: typeof globalThis.fetch
  /**
   * The longest wait for a file's answer, and then for each next chunk of it: a stalled
   * download fails with a `TimeoutError`, and its `.partial` is resumed by the next one.
   * Not a bound on a whole file, which may rightly take long.
   * @default no limit
   */
  readonly idleTimeoutMs?: number
  /**
   * The most the whole download may take; past it, a `TimeoutError` (the `.partial` stays).
   * @default no limit
   */
  readonly deadlineMs?: number
}

/**
 * Saves every file of an export into `directory` and answers the paths written. The links are
 * signed, so no API key is sent with them (it could otherwise leak to wherever they point).
 * A file is written as `<name>.partial` and renamed when complete, so a file with its final
 * name is never a partial one; a `.partial` left by an interrupted download is resumed with a
 * `Range` request (the server answers the rest, or the whole file if it changed).
 *
 * @throws the API's error (e.g. `PermissionDeniedError` for an expired link) when a link is
 *   refused; a `NetworkError` when the connection fails, mid-file too; an
 *   `UnexpectedResponseError` when a file's bytes differ in number from the artifact's
 *   `bytes` (the `.partial` stays, never renamed); and the file system's error (with its
 *   `code`, e.g. `EACCES`) when `directory` cannot be written.
 */
export async function downloadFiles(
  download: ExportDownload,
  directory: string,
  options: DownloadFilesOptions = {},
): Promise<string[]> {
  const fetchFn = options.fetch ?? globalThis.fetch
  for (const artifact of download.artifacts) {
    // The name comes from the server: refuse anything that would escape the directory.
    if (basename(artifact.filename) !== artifact.filename || artifact.filename.startsWith('.')) {
      throw new Error(`Refusing to write an artifact named "${artifact.filename}"`)
    }
  }
  await mkdir(directory, { recursive: true })
  // The caller's signal, and this download's own for its timeouts: either stops it.
  const timeouts = new AbortController()
  const signal = combineSignals(options.signal, timeouts.signal)
  const { idleTimeoutMs, deadlineMs } = options
  let idle: NodeJS.Timeout | undefined
  const stillMoving = () => {
    if (idleTimeoutMs === undefined) return
    clearTimeout(idle)
    idle = setTimeout(() => {
      timeouts.abort(new TimeoutError(idleTimeoutMs))
    }, idleTimeoutMs)
  }
  const deadline =
    deadlineMs === undefined
      ? undefined
      : setTimeout(() => {
          timeouts.abort(new TimeoutError(deadlineMs))
        }, deadlineMs)
  try {
    return await downloadEach(download, directory, fetchFn, options, signal, stillMoving)
  } finally {
    clearTimeout(idle)
    clearTimeout(deadline)
  }
}

async function downloadEach(
  download: ExportDownload,
  directory: string,
  fetchFn: typeof globalThis.fetch,
  options: DownloadFilesOptions,
  signal: AbortSignal | undefined,
  stillMoving: () => void,
): Promise<string[]> {
  const totalBytes = download.artifacts.reduce((sum, artifact) => sum + artifact.bytes, 0)
  let doneBytes = 0
  const written: string[] = []
  for (const [index, artifact] of download.artifacts.entries()) {
    const target = join(directory, artifact.filename)
    const partial = `${target}.partial`
    const have = await sizeOf(partial)
    const resume = have > 0 && have < artifact.bytes
    const headers: Record<string, string> = { 'user-agent': USER_AGENT }
    if (resume) {
      headers['range'] = `bytes=${String(have)}-`
      // The server's ETag of a file is its artifact id: a different file is sent whole.
      headers['if-range'] = `"${artifact.id}"`
    }
    const url = new URL(artifact.url, `${options.baseUrl ?? 'http://127.0.0.1'}/`)
    let response: Response
    stillMoving()
    try {
      response = await fetchFn(url, { headers, ...(signal === undefined ? {} : { signal }) })
    } catch (error) {
      if (signal?.aborted === true) throw signal.reason
      throw new NetworkError({ message: `Downloading ${artifact.filename} failed`, cause: error })
    }
    if ((response.status !== 200 && response.status !== 206) || response.body === null) {
      throw createApiError({
        status: response.status,
        bodyText: await response.text(),
        requestId: response.headers.get('x-request-id') ?? undefined,
        retryAfterMs: undefined,
      })
    }
    const appending = response.status === 206
    let fileBytes = appending ? have : 0
    const report = () =>
      options.onProgress?.({
        filename: artifact.filename,
        file: index + 1,
        files: download.artifacts.length,
        fileBytes,
        fileTotalBytes: artifact.bytes,
        bytes: doneBytes + fileBytes,
        totalBytes,
      })
    report()
    const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>)
    body.on('data', (chunk: Buffer) => {
      fileBytes += chunk.length
      stillMoving()
      report()
    })
    // Which side failed decides the error: the body (the connection dropped mid-file) is a
    // NetworkError like any other lost connection; the file keeps the file system's error.
    let bodyError: unknown
    body.on('error', (error) => {
      bodyError ??= error
    })
    try {
      await pipeline(body, createWriteStream(partial, { flags: appending ? 'a' : 'w' }), {
        ...(signal === undefined ? {} : { signal }),
      })
    } catch (error) {
      if (signal?.aborted === true) throw signal.reason
      if (bodyError === undefined) throw error
      throw new NetworkError({
        message: `Downloading ${artifact.filename} failed after ${String(fileBytes)} of ${String(artifact.bytes)} bytes; ${basename(partial)} is resumed by the next download`,
        cause: bodyError,
      })
    }
    // A body can end cleanly and still be short (a chunked answer cut off by a proxy or a
    // server bug): only the artifact's size says the file is whole.
    if (fileBytes !== artifact.bytes) {
      throw new UnexpectedResponseError({
        status: response.status,
        requestId: response.headers.get('x-request-id') ?? undefined,
        message: `Downloading ${artifact.filename} gave ${String(fileBytes)} bytes, not the ${String(artifact.bytes)} of the artifact; ${basename(partial)} is left as it is`,
      })
    }
    await rename(partial, target)
    doneBytes += artifact.bytes
    written.push(target)
  }
  return written
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size
  } catch {
    return 0
  }
}
