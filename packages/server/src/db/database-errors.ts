/**
 * A database that is there but cannot serve: an outage, not a bug. SQLite's busy, I/O and
 * full-disk codes; PostgreSQL's connection (08), resources (53), operator intervention (57:
 * shutdown, a statement timeout or cancel) and serialisation (40) classes, a database that takes
 * no connections (55000) or no writes (25006, a standby during a failover), a lock not had in
 * time (55P03); the socket errors of a server that went away.
 */
const UNAVAILABLE_CODES =
  /^(SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|PROTOCOL).*|08...|53...|57P0.|57014|55000|55P03|25006|40001|40P01|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE)$/

/**
 * node-postgres reports a connection that went away mid-query with a plain Error, no code: the
 * session was ended (a restart, `pg_terminate_backend`), or the client was already broken.
 */
const LOST_CONNECTION_MESSAGES =
  /^(Connection terminated( unexpectedly| due to connection timeout)?|Client has encountered a connection error and is not queryable|Client was closed and is not queryable|timeout exceeded when trying to connect)$/

/** Whether `error` is the database being unavailable (answer 503, retry later), not a bug. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false
  const { code, message } = error as { code?: unknown; message?: unknown }
  if (typeof code === 'string') return UNAVAILABLE_CODES.test(code)
  return typeof message === 'string' && LOST_CONNECTION_MESSAGES.test(message)
}
