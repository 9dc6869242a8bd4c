import { createWriteStream } from 'node:fs'
import { mkdir, rename, rm } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import type { ExportDownload } from '../types.js'

/**
 * Saves every artifact of an export into `directory` and answers the paths written. The links
 * are signed, so no API key is sent with them (it could otherwise leak to wherever they
 * point). Each file is written under a temporary name and renamed when complete, so a file
 * with the final name is never a partial one.
 */
export async function downloadArtifacts(
  download: ExportDownload,
  directory: string,
  baseUrl: string,
  signal: AbortSignal,
): Promise<string[]> {
  await mkdir(directory, { recursive: true })
  const written: string[] = []
  for (const artifact of download.artifacts) {
    // The name comes from the server: refuse anything that would escape the directory.
    if (basename(artifact.filename) !== artifact.filename || artifact.filename.startsWith('.')) {
      throw new Error(`Refusing to write an artifact named "${artifact.filename}"`)
    }
    const url = new URL(artifact.url, `${baseUrl}/`)
    const response = await fetch(url, { signal })
    if (!response.ok || response.body === null) {
      throw new Error(`Downloading ${artifact.filename} failed: HTTP ${String(response.status)}`)
    }
    const target = join(directory, artifact.filename)
    const partial = `${target}.partial`
    try {
      await pipeline(
        Readable.fromWeb(response.body as WebReadableStream<Uint8Array>),
        createWriteStream(partial),
        { signal },
      )
      await rename(partial, target)
    } catch (error) {
      await rm(partial, { force: true })
      throw error
    }
    written.push(target)
  }
  return written
}
