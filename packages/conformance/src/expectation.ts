/**
 * What a check expected and what came back instead. Thrown by the checks' expectations and by
 * the API helpers when the server answers something the suite cannot go on from.
 */
export class ExpectationFailed extends Error {
  override readonly name = 'ExpectationFailed'
  readonly code = 'expectation_failed'
  readonly expected: string
  readonly actual: string

  constructor(expected: string, actual: string) {
    super(`expected ${expected}; got ${actual}`)
    this.expected = expected
    this.actual = actual
  }
}

/** A check that cannot run against this target, with the reason (never counted as passed). */
export class CheckNotRun extends Error {
  override readonly name = 'CheckNotRun'
  readonly code = 'not_run'
  readonly reason: string

  constructor(reason: string) {
    super(reason)
    this.reason = reason
  }
}
