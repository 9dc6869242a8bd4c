/** A status line for people, redrawn in place on a terminal; nothing elsewhere. */
export interface Progress {
  /** Replaces the status line. */
  update(line: string): void
  /** Ends the status line (a newline), if one was drawn. */
  done(): void
}

/** Draws on `write` (stderr) when `enabled` (a TTY, and not `--json`); a no-op otherwise. */
export function createProgress(write: (text: string) => void, enabled: boolean): Progress {
  let drawn = false
  return {
    update(line) {
      if (!enabled) return
      // Carriage return and "erase line": the new status replaces the old one.
      write(`\r\u001b[2K${line}`)
      drawn = true
    },
    done() {
      if (drawn) write('\n')
      drawn = false
    },
  }
}

/** `4 s`, `2 min 05 s`, `1 h 02 min`. */
export function formatElapsed(ms: number): string {
  const seconds = Math.floor(ms / 1000)
  if (seconds < 60) return `${String(seconds)} s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${String(minutes)} min ${String(seconds % 60).padStart(2, '0')} s`
  return `${String(Math.floor(minutes / 60))} h ${String(minutes % 60).padStart(2, '0')} min`
}

/** `512 B`, `3.4 KiB`, `12.0 MiB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${String(bytes)} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(1)} ${units[unit] ?? 'TiB'}`
}
