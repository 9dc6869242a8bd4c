import type { Check } from './check.js'
import { concurrencyChecks } from './concurrency-checks.js'
import { keyChecks } from './key-checks.js'
import { methodChecks } from './method-checks.js'
import { mismatchChecks } from './mismatch-checks.js'
import { orderChecks } from './order-checks.js'
import { policyChecks } from './policy-checks.js'
import { replayChecks } from './replay-checks.js'
import { scopeChecks } from './scope-checks.js'
import { waitingChecks } from './waiting-checks.js'

/** Every check, in the order they run and are reported. */
export const CHECKS: readonly Check[] = [
  ...keyChecks,
  ...orderChecks,
  ...replayChecks,
  ...mismatchChecks,
  ...scopeChecks,
  ...methodChecks,
  ...concurrencyChecks,
  ...waitingChecks,
  ...policyChecks,
]

/** Whether `selector` (a check id, or a group such as `key` or `waiting`) picks the check. */
export function selects(selector: string, check: Check): boolean {
  return check.id === selector || check.id.startsWith(`${selector}.`)
}
