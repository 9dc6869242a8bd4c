export type { Check, CheckContext, Requirement } from './checks/check.js'
export { CHECKS, selects } from './checks/index.js'
export type {
  CheckResult,
  CheckStatus,
  ConformanceOptions,
  ConformanceReport,
} from './run-conformance.js'
export { TargetUnusableError, runConformance } from './run-conformance.js'
export { renderJsonReport, renderTextReport } from './report/render-report.js'
export type { SlowMode } from './slow-mode.js'
