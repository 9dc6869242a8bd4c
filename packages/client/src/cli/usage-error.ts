/** The command line was used wrongly (unknown command, missing or bad option): exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}
