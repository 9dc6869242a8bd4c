export type { Clock, ManualClock } from './core/clock.js'
export { createManualClock, systemClock } from './core/clock.js'
export type {
  ActiveClaim,
  BeginOutcome,
  ClaimState,
  IdempotencyEngine,
  IdempotentRequest,
} from './core/engine.js'
export { createIdempotencyEngine } from './core/engine.js'
export type {
  IdempotencyErrorRenderer,
  IdempotencyErrorResponse,
  RenderedError,
} from './core/error-response.js'
export {
  IdempotencyHttpError,
  KEY_MISSING_REASON,
  isIdempotencyHttpError,
  renderEnvelopeError,
  renderErrorEnvelope,
  renderProblemDetails,
  toIdempotencyErrorResponse,
} from './core/error-response.js'
export type { AnyIdempotencyError, IdempotencyErrorCode } from './core/errors.js'
export {
  FingerprintMismatchError,
  IdempotencyError,
  IdempotencyKeyInvalidError,
  LeaseLostError,
  RequestInProgressError,
  StoreUnavailableError,
  WaitAbortedError,
  isIdempotencyError,
} from './core/errors.js'
export { BodyFingerprint, fingerprintRequest } from './core/fingerprint.js'
export {
  MAX_KEY_LENGTH,
  headerValues,
  parseIdempotencyKey,
  parseIdempotencyKeyHeader,
} from './core/key.js'
export type {
  IdempotencyEvent,
  IdempotencyOptions,
  ResolvedIdempotencyOptions,
} from './core/options.js'
export type { Purger, PurgerOptions } from './core/purger.js'
export { startPurger } from './core/purger.js'
export type { RecordState, StoredResponse } from './core/record.js'
export { NEVER_STORED_HEADER_NAMES, STORED_HEADER_NAMES, isStorableStatus } from './core/record.js'
export type { ClaimOutcome, ClaimRef, ClaimRequest, Store, StoreTransaction } from './core/store.js'
export type {
  IdempotencyAdapterOptions,
  IdempotencyOutcome,
  IdempotencyRouteSettings,
  NotStoredReason,
} from './adapters/idempotency-adapter.js'
export { DEFAULT_MAX_STORED_BODY_BYTES } from './adapters/idempotency-adapter.js'
