import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { LeaseLostError } from '@ticksupply/idempotency'
import { completeReply } from '@ticksupply/idempotency/fastify'
import type { Database, Transaction } from '../db/database.js'
import { commitBeforeDeadline, deadlineSignal } from './deadline.js'
import { JSON_TYPE } from './envelope.js'

export interface MutationResult {
  readonly status: number
  /** Serialised as JSON; omitted for bodyless answers such as 204. */
  readonly body?: unknown
  /** The body as JSON text serialised by the operation (e.g. int64 written exactly); wins over `body`. */
  readonly bodyText?: string
}

export interface MutationOptions {
  /** Fault injection: sleep this long once the key is claimed, before the transaction. */
  readonly delayMs: number
  /** Fault injection: die (SIGKILL) right after the commit, before the response is sent. */
  readonly crashAfterCommit: boolean
}

/**
 * Runs a write operation in one transaction together with its idempotency completion: the
 * resource changes and the stored response commit together or not at all, so a crash between
 * them is impossible to observe. The response is serialised here, once, and stored by the
 * adapter's `completeReply`, so that the bytes stored for replay are the bytes sent.
 *
 * The transaction does not commit if the request's deadline has passed or its claim's lease was
 * lost; an error thrown by `operation` rolls everything back and is answered (and, below 500,
 * stored) by the error handler.
 */
export async function runMutation(
  db: Database,
  request: FastifyRequest,
  reply: FastifyReply,
  options: MutationOptions,
  operation: (tx: Transaction, now: number) => Promise<MutationResult>,
): Promise<string> {
  const claim = request.idempotencyClaim
  if (options.delayMs > 0) await sleep(options.delayMs)
  // A claim the store can no longer vouch for runs nothing. One lost later is caught by the
  // completion itself, a compare-and-set on the claim's token inside this transaction: it
  // refuses, and the transaction rolls back.
  if (claim?.state === 'lost') throw new LeaseLostError()
  const signal = deadlineSignal(request)
  const payload = await db.transaction(
    async (tx) => {
      signal.throwIfAborted()
      const result = await operation(tx, Date.now())
      const payload =
        result.bodyText ?? (result.body === undefined ? '' : JSON.stringify(result.body))
      // Past the deadline its 408 is on its way: this reply's status is no longer ours to set.
      signal.throwIfAborted()
      reply.code(result.status)
      if (result.bodyText !== undefined || result.body !== undefined) reply.type(JSON_TYPE)
      // Stores the response (status, headers, these bytes) with the claim, in this transaction.
      const sent = await completeReply(reply, payload, tx.store)
      // The last step before COMMIT: the deadline either has passed (roll back) or cannot fire.
      commitBeforeDeadline(request)
      return sent
    },
    { signal },
  )
  if (options.crashAfterCommit) process.kill(process.pid, 'SIGKILL')
  return payload
}
