import { fileURLToPath } from 'node:url'

/** The monorepo's root folder (this file is packages/client/test/support/repo-root.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url))

/** The client package's folder. */
export const CLIENT_ROOT = fileURLToPath(new URL('../../', import.meta.url))
