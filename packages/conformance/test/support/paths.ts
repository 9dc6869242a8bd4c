import { fileURLToPath } from 'node:url'

/** The monorepo's root folder (this file is packages/conformance/test/support/paths.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url))

/** The command as npm links it: `npx ticksupply-conformance` runs this file with node. */
export const CONFORMANCE_BIN = fileURLToPath(
  new URL('../../bin/ticksupply-conformance.js', import.meta.url),
)

/** The built server, as `npm start` runs it. */
export const SERVER_MAIN = fileURLToPath(new URL('../../../server/dist/main.js', import.meta.url))
