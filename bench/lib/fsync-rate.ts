/**
 * The disk's single-stream fsync rate: 8 kB appended and `fdatasync`ed in a loop for about a
 * second, in the directory the databases live in. One commit per request without group commit
 * cannot go faster than this.
 */
import { closeSync, fdatasyncSync, openSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'

export interface FsyncRate {
  readonly perSecond: number
  /** Mean time of one write + fdatasync, in microseconds. */
  readonly meanMicros: number
}

export function measureFsyncRate(dir: string, seconds = 1): FsyncRate {
  const file = join(dir, 'fsync-probe')
  const fd = openSync(file, 'w')
  const block = Buffer.alloc(8192, 1)
  let count = 0
  const started = process.hrtime.bigint()
  const until = started + BigInt(Math.round(seconds * 1e9))
  try {
    // Bounded in count too, for a disk that lies about syncing.
    while (process.hrtime.bigint() < until && count < 1_000_000) {
      writeSync(fd, block)
      fdatasyncSync(fd)
      count++
    }
  } finally {
    closeSync(fd)
    rmSync(file, { force: true })
  }
  const elapsedSeconds = Number(process.hrtime.bigint() - started) / 1e9
  return { perSecond: count / elapsedSeconds, meanMicros: (elapsedSeconds * 1e6) / count }
}
