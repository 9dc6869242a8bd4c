/**
 * `npm install` on the Node the project supports prints no EBADENGINE warning: every package
 * the lockfile installs on this platform accepts the running Node (see the `overrides` in the
 * root package.json and docs/decisions/0320-node-20-dependencies.md).
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import semver from 'semver'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from './support/server.js'

interface LockedPackage {
  readonly version?: string
  readonly engines?: { readonly node?: string } | readonly string[]
  readonly optional?: boolean
  readonly os?: readonly string[]
  readonly cpu?: readonly string[]
  readonly link?: boolean
}

const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockedPackage>
}
const rootManifest = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string }
}

/** Whether npm installs this entry here: optional ones for another OS or CPU are skipped. */
function installedHere(entry: LockedPackage): boolean {
  const fits = (list: readonly string[] | undefined, value: string) => {
    if (list === undefined || list.includes(`!${value}`)) return list === undefined
    const wanted = list.filter((item) => !item.startsWith('!'))
    return wanted.length === 0 || wanted.includes(value)
  }
  return fits(entry.os, process.platform) && fits(entry.cpu, process.arch)
}

describe('the lockfile', () => {
  it('installs only packages whose engines accept the running Node', () => {
    const refused = Object.entries(lock.packages)
      .filter(([path, entry]) => path !== '' && entry.link !== true && installedHere(entry))
      .flatMap(([path, entry]) => {
        const range = Array.isArray(entry.engines)
          ? undefined
          : (entry.engines as { node?: string } | undefined)?.node
        return range === undefined || semver.satisfies(process.versions.node, range)
          ? []
          : [`${path}@${entry.version ?? '?'} wants node ${range}`]
      })
    expect(refused).toEqual([])
  })

  it('is checked on a Node the project supports', () => {
    expect(semver.satisfies(process.versions.node, rootManifest.engines.node)).toBe(true)
  })

  it('pins cookie below 2 for light-my-request (cookie 2 wants Node 22)', () => {
    expect(lock.packages['node_modules/cookie']?.version).toMatch(/^1\./)
  })
})
