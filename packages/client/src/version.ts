/** This package's version; a test keeps it equal to package.json's. */
export const CLIENT_VERSION = '0.1.0'

/** Sent as `User-Agent` on every request: the client, its version, and the runtime. */
export const USER_AGENT = `ticksupply-client-js/${CLIENT_VERSION} node/${process.versions.node}`
