export { createClient } from './client.js'
export type {
  AvailabilityApi,
  BillingApi,
  DatastreamsApi,
  ExchangesApi,
  ExportSchemasApi,
  ExportsApi,
  InstrumentsApi,
  SubscriptionsApi,
  TicksupplyClient,
} from './client.js'
export { DEFAULT_BASE_URL } from './options.js'
export { CLIENT_VERSION, USER_AGENT } from './version.js'
export { responseOf } from './response-metadata.js'
export type { RateLimitInfo, ResponseMetadata } from './response-metadata.js'
export { downloadFiles } from './download-files.js'
export type { DownloadFilesOptions, DownloadProgress } from './download-files.js'
export { FINISHED_EXPORT_STATUSES } from './wait-for-export.js'
export type { ExportProgress, WaitForExportOptions } from './wait-for-export.js'
export type { ClientOptions, RetryEvent, RetryOptions } from './options.js'
export type {
  ApiRequest,
  ApiResponse,
  CallOptions,
  HttpMethod,
  MutationOptions,
} from './send-with-retries.js'
export { createIdempotencyKey, isIdempotencyKey } from './idempotency-keys.js'
export { createMemoryKeyStore } from './key-store.js'
export type { KeyStore } from './key-store.js'
export { createFileKeyStore } from './file-key-store.js'
export type { FileKeyStoreOptions } from './file-key-store.js'
export { KeyFileError } from './key-file-error.js'
export { paginate } from './pagination.js'
export { parseRetryAfter } from './retry-after.js'
export { computeBackoffMs, computeRetryDelayMs } from './retry.js'
export type * from './types.js'

export { isTicksupplyError } from './errors/any-ticksupply-error.js'
export type { AnyTicksupplyError, TicksupplyErrorCode } from './errors/any-ticksupply-error.js'
export { TicksupplyError } from './errors/ticksupply-error.js'
export { ApiError } from './errors/api-error.js'
export type { ApiErrorCode } from './errors/api-error.js'
export { AlreadyExistsError } from './errors/already-exists-error.js'
export { IdempotencyKeyReusedError } from './errors/idempotency-key-reused-error.js'
export { InternalError } from './errors/internal-error.js'
export { InvalidArgumentError } from './errors/invalid-argument-error.js'
export { NetworkError } from './errors/network-error.js'
export { NotFoundError } from './errors/not-found-error.js'
export { PaymentRequiredError } from './errors/payment-required-error.js'
export { PermissionDeniedError } from './errors/permission-denied-error.js'
export { RateLimitedError } from './errors/rate-limited-error.js'
export { RequestInProgressError } from './errors/request-in-progress-error.js'
export { RequestTimeoutError } from './errors/request-timeout-error.js'
export { TimeoutError } from './errors/timeout-error.js'
export { UnauthenticatedError } from './errors/unauthenticated-error.js'
export { UnavailableError } from './errors/unavailable-error.js'
export { UnexpectedResponseError } from './errors/unexpected-response-error.js'
