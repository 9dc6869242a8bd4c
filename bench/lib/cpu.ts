/**
 * A server process's own CPU time, read from the OS (`/proc/<pid>/stat`: user + system time of
 * all its threads), so that the load generator's CPU is never counted.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

function clockTicksPerSecond(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
  } catch {
    return 100
  }
}

const TICKS_PER_SECOND = clockTicksPerSecond()

/** Whether CPU time can be read at all (Linux). */
export const CPU_READABLE = (() => {
  try {
    readFileSync('/proc/self/stat')
    return true
  } catch {
    return false
  }
})()

/** The resolution of {@link cpuMicros}, in microseconds. */
export const CPU_RESOLUTION_MICROS = 1_000_000 / TICKS_PER_SECOND

/** User + system CPU time of `pid` so far, in microseconds; undefined where unreadable. */
export function cpuMicros(pid: number | undefined): number | undefined {
  if (pid === undefined || !CPU_READABLE) return undefined
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
    // The command name (field 2) is in parentheses and may contain spaces: count from after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // Fields 14 and 15 of the file are utime and stime; fields[0] here is field 3.
    const ticks = Number(fields[11]) + Number(fields[12])
    return (ticks * 1_000_000) / TICKS_PER_SECOND
  } catch {
    return undefined
  }
}
