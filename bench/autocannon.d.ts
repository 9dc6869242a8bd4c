// The part of autocannon 9's API the benchmark uses (the package ships no types).
declare module 'autocannon' {
  export interface AutocannonRequest {
    method?: string
    path?: string
    headers?: Record<string, string>
    body?: string
  }
  export interface AutocannonRequestTemplate extends AutocannonRequest {
    /** Called for every request; returns the request to send. */
    setupRequest?: (
      request: AutocannonRequest,
      context: Record<string, unknown>,
    ) => AutocannonRequest
  }
  export interface AutocannonOptions {
    url: string
    connections?: number
    duration?: number
    pipelining?: number
    timeout?: number
    requests?: AutocannonRequestTemplate[]
  }
  export interface Histogram {
    average: number
    mean: number
    total: number
    p50: number
    p99: number
    max: number
  }
  export interface AutocannonResult {
    requests: Histogram
    latency: Histogram
    /** Seconds. */
    duration: number
    errors: number
    timeouts: number
    non2xx: number
    '2xx': number
    statusCodeStats: Record<string, { count: number }>
  }
  export default function autocannon(options: AutocannonOptions): Promise<AutocannonResult>
}
