import { setTimeout as sleep } from 'node:timers/promises'
import { describeReply } from '../api/describe-reply.js'
import type { AccountClient, ApiRequest } from '../api/account-client.js'
import { createSubscription, subscriptionsTo } from '../api/ticksupply-api.js'
import type { HttpReply } from '../http/http-client.js'
import { CheckNotRun } from '../expectation.js'
import type { SlowOperation } from '../slow-mode.js'
import { slowOperation } from '../slow-mode.js'
import type { Check, CheckContext } from './check.js'
import {
  IN_PROGRESS_MESSAGE,
  expectCount,
  expectMismatch,
  expectReplayOf,
  fail,
  isInProgress,
  isReplay,
} from './expect.js'

const WAITING = 'Waiting for an original that is still running'

/**
 * A request left running while the check goes on. If the check fails before awaiting it, its
 * later failure must not become an unhandled rejection that ends the whole run.
 */
function inFlight<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined)
  return promise
}

/**
 * A slow operation of about `wantedMs`, or "not run" when the target cannot be made slow, or
 * only slower or faster than the check can use.
 */
function requireSlow(context: CheckContext, wantedMs: number, minimumMs: number): SlowOperation {
  const operation = slowOperation(context.slow, wantedMs)
  if (operation === undefined) {
    throw new CheckNotRun(
      "the target cannot be made slow: give --slow-header NAME (the target sleeps NAME's value in ms) or --server-delay-ms N (every operation of the target takes N ms)",
    )
  }
  if (operation.durationMs < minimumMs) {
    throw new CheckNotRun(
      `needs an operation of at least ${String(minimumMs)} ms; the server's takes ${String(operation.durationMs)} ms (--server-delay-ms)`,
    )
  }
  return operation
}

/**
 * Sends `first`, then `second` `offsetMs` later, both asking for the slow operation, and
 * resolves both answers. Which of the two the server claims first is not the suite's to decide
 * on a busy machine, so the checks accept either order: the one that ran is the original.
 */
async function sendOverlapping(
  account: AccountClient,
  first: ApiRequest,
  second: ApiRequest,
  offsetMs: number,
): Promise<readonly [HttpReply, HttpReply]> {
  const firstAnswer = inFlight(timed(account.send(first)))
  await sleep(offsetMs)
  const secondAnswer = inFlight(timed(account.send(second)))
  return [await firstAnswer, await secondAnswer]
}

/** How long each overlapping answer took, from sending its request to its last byte. */
const elapsedMs = new WeakMap<HttpReply, number>()

async function timed(sending: Promise<HttpReply>): Promise<HttpReply> {
  const sentAt = performance.now()
  const reply = await sending
  elapsedMs.set(reply, performance.now() - sentAt)
  return reply
}

/**
 * "About 3 seconds", as a range a busy machine and network still fit: from two thirds of the
 * wait to half as long again.
 */
function expectAboutTheWait(reply: HttpReply, waitMs: number, what: string): void {
  const took = elapsedMs.get(reply)
  if (took === undefined) return
  const [least, most] = [(waitMs * 2) / 3, waitMs * 1.5]
  if (took < least || took > most) {
    fail(
      `${what} after about the wait of ${String(waitMs)} ms (${String(Math.round(least))} to ${String(Math.round(most))} ms after it was sent)`,
      `the 409 after ${String(Math.round(took))} ms`,
    )
  }
}

/** The answer that ran the operation (a 201 that is no replay), and the other one. */
function splitOriginal(
  replies: readonly [HttpReply, HttpReply],
  what: string,
): { original: HttpReply; other: HttpReply } {
  const [a, b] = replies
  const original = [a, b].find((reply) => reply.status === 201 && !isReplay(reply))
  if (original === undefined) {
    fail(`one of ${what} to run the create (201)`, `${describeReply(a)} | ${describeReply(b)}`)
  }
  return { original, other: original === a ? b : a }
}

export const waitingChecks: readonly Check[] = [
  {
    id: 'waiting.duplicate-gets-replay',
    title: 'A duplicate sent while the original runs waits, then gets the replay',
    clause: `${WAITING}: "The duplicate waits for the original for about 3 seconds in all ... The original finishes in time: the duplicate gets the replay."`,
    requires: ['slow'],
    async run(context) {
      const { account, newKey, takeDatastream, waitMs } = context
      const slow = requireSlow(context, 1500, 400)
      // Late enough that the original holds the key, early enough that it ends within the wait.
      const offsetMs = Math.max(300, slow.durationMs - Math.min(1500, waitMs / 2))
      const datastreamId = takeDatastream()
      const request = createSubscription(datastreamId, { key: newKey(), headers: slow.headers })
      const { original, other: duplicate } = splitOriginal(
        await sendOverlapping(account, request, request, offsetMs),
        'two identical creates',
      )
      if (isInProgress(duplicate)) {
        fail(
          `the duplicate, sent ${String(offsetMs)} ms into a ${String(slow.durationMs)} ms operation, to wait for it and get its replay`,
          `409 "${IN_PROGRESS_MESSAGE}" (it did not wait for the original to finish): ${describeReply(duplicate)}`,
        )
      }
      expectReplayOf(duplicate, original, 'the duplicate sent while the original ran')
      expectCount((await subscriptionsTo(account, datastreamId)).length, 1, 'subscription created')
    },
  },
  {
    id: 'waiting.in-progress-409',
    title:
      'A duplicate of an original that outlasts the wait gets 409 with Retry-After: 1, after about the wait',
    clause: `${WAITING}: "The duplicate waits for the original for about 3 seconds in all"; "It does not: 409 already_exists, message Request is still in progress. Please retry later., with Retry-After: 1"; "a conflict answer (either 409) is never stored"`,
    requires: ['slow'],
    async run(context) {
      const { account, newKey, takeDatastream, waitMs } = context
      const slow = requireSlow(context, waitMs + 3000, waitMs + 2000)
      const datastreamId = takeDatastream()
      const request = createSubscription(datastreamId, { key: newKey(), headers: slow.headers })
      const { original, other: duplicate } = splitOriginal(
        await sendOverlapping(account, request, request, 300),
        'two identical creates',
      )
      if (!isInProgress(duplicate)) {
        fail(
          `409 already_exists "${IN_PROGRESS_MESSAGE}" with Retry-After: 1 for a duplicate of a ${String(slow.durationMs)} ms operation`,
          describeReply(duplicate),
        )
      }
      expectAboutTheWait(duplicate, waitMs, 'the duplicate to be answered "still in progress"')
      // The 409 was not stored: once the original is done, a retry gets its replay.
      expectReplayOf(
        await account.send({ ...request, headers: [] }),
        original,
        'a retry after the original ended',
      )
      expectCount((await subscriptionsTo(account, datastreamId)).length, 1, 'subscription created')
    },
  },
  {
    id: 'waiting.mismatch-not-in-progress',
    title: 'Another request under a running key is the mismatch, not "in progress"',
    clause:
      'What a repeated key gets: "any state, differs: 409 already_exists, message Idempotency key reused with different request parameters"',
    requires: ['slow'],
    async run(context) {
      const { account, newKey, takeDatastream } = context
      const slow = requireSlow(context, 1500, 400)
      const key = newKey()
      const [first, second] = [takeDatastream(), takeDatastream()]
      const { other } = splitOriginal(
        await sendOverlapping(
          account,
          createSubscription(first, { key, headers: slow.headers }),
          createSubscription(second, { key, headers: slow.headers }),
          Math.min(300, slow.durationMs / 3),
        ),
        'two creates of different datastreams under one key',
      )
      expectMismatch(other, 'the other body under the key of a running request')
      const created =
        (await subscriptionsTo(account, first)).length +
        (await subscriptionsTo(account, second)).length
      expectCount(created, 1, 'subscription created by the two requests')
    },
  },
  {
    id: 'exit.client-gone-keeps-response',
    title: 'A client that disconnects mid-operation gets the replay when it retries',
    clause:
      'Every exit path: "A client that disconnects while its own operation runs does not stop the operation from completing and storing its response, so that its retry gets the replay."',
    requires: ['slow'],
    async run(context) {
      const { account, newKey, takeDatastream } = context
      const slow = requireSlow(context, 1500, 600)
      const datastreamId = takeDatastream()
      const request = createSubscription(datastreamId, { key: newKey() })
      const leaveAfterMs = Math.min(300, slow.durationMs / 3)
      await account.abandon({ ...request, headers: slow.headers }, leaveAfterMs)
      // Retry once the operation is surely over: the retry must find its stored answer.
      await sleep(slow.durationMs - leaveAfterMs + 1000)
      const retry = await account.send(request)
      if (
        retry.status !== 201 ||
        !isReplay(retry) ||
        retry.header('original-request') === undefined
      ) {
        fail(
          `the replay of the abandoned create (201 with Idempotent-Replayed: true and Original-Request) for the retry`,
          `${describeReply(retry)}${isReplay(retry) ? '' : ' (not a replay: the response had not been stored, so the operation ran again)'}`,
        )
      }
      expectCount((await subscriptionsTo(account, datastreamId)).length, 1, 'subscription created')
    },
  },
]
