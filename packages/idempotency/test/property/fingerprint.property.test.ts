/**
 * The fingerprint's framing: no two distinct requests share one. A request is its method (an
 * HTTP token, compared in upper case), its target (path and query, as sent: never a NUL, which
 * HTTP cannot carry) and its body (any bytes). The hard cases are requests made of the same
 * characters split differently between the parts.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { BodyFingerprint, fingerprintRequest } from '@ticksupply/idempotency'

const RUNS = 2_000

interface Request {
  readonly method: string
  readonly target: string
  readonly body: Uint8Array
}

const TOKEN_CHARS = Array.from(
  "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
)
const method = fc.oneof(
  fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'post', 'Delete'),
  fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 1, maxLength: 12 }),
)
/** Request targets: printable ASCII and percent-encodings, and (for other adapters) unicode. */
const target = fc.oneof(
  fc
    .string({
      unit: fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code)),
      maxLength: 40,
    })
    .map((rest) => `/${rest}`),
  fc.string({ unit: 'grapheme', maxLength: 20 }).map((rest) => `/${rest.replace(/\0/g, '')}`),
)
const body = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.string({ maxLength: 40 }).map((text) => Buffer.from(text)),
)
const request = fc.record({ method, target, body })

const fingerprint = (r: Request) => fingerprintRequest(r.method, r.target, r.body)

const same = (a: Request, b: Request) =>
  a.method.toUpperCase() === b.method.toUpperCase() &&
  a.target === b.target &&
  Buffer.from(a.body).equals(Buffer.from(b.body))

describe('fingerprintRequest', () => {
  it('is 64 hex digits and depends on nothing but the request', () => {
    fc.assert(
      fc.property(request, (r) => {
        const first = fingerprint(r)
        expect(first).toMatch(/^[0-9a-f]{64}$/)
        expect(
          fingerprint({
            method: r.method.toLowerCase(),
            target: r.target,
            body: Buffer.from(r.body),
          }),
        ).toBe(first)
      }),
      { numRuns: RUNS },
    )
  })

  it('gives two requests one fingerprint exactly when they are the same request', () => {
    fc.assert(
      fc.property(request, request, (a, b) => {
        expect(fingerprint(a) === fingerprint(b)).toBe(same(a, b))
      }),
      { numRuns: RUNS },
    )
  })

  it('tells apart the same characters split differently between target and body', () => {
    // One text, cut in two places: every cut gives a request, no two alike share a fingerprint.
    const cuts = fc
      .record({
        method,
        text: fc.string({
          unit: fc.constantFrom('/', 'a', '?', '=', '&', '%', '0', ' '),
          minLength: 1,
          maxLength: 12,
        }),
        first: fc.nat(),
        second: fc.nat(),
      })
      .map(({ method: m, text, first, second }) => {
        const at = (n: number) => 1 + (n % text.length)
        const split = (cut: number): Request => ({
          method: m,
          target: `/${text.slice(0, cut)}`,
          body: Buffer.from(text.slice(cut)),
        })
        return [split(at(first) - 1), split(at(second) - 1)] as const
      })
    fc.assert(
      fc.property(cuts, ([a, b]) => {
        expect(fingerprint(a) === fingerprint(b)).toBe(same(a, b))
      }),
      { numRuns: RUNS },
    )
  })

  it('tells apart a method that ends where the target begins', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 2, maxLength: 8 }),
        fc.nat(),
        body,
        (token, cut, bytes) => {
          const at = 1 + (cut % (token.length - 1))
          const a: Request = {
            method: token.slice(0, at),
            target: `/${token.slice(at)}`,
            body: bytes,
          }
          const b: Request = { method: token, target: '/', body: bytes }
          expect(fingerprint(a) === fingerprint(b)).toBe(same(a, b))
        },
      ),
      { numRuns: RUNS / 4 },
    )
  })
})

describe('BodyFingerprint', () => {
  it('gives the fingerprint of the whole body, however it is cut into chunks', () => {
    // Up to 200 KiB: past the 64 KiB kept whole, the rest is hashed as it streams.
    const chunked = fc.record({
      method,
      target,
      size: fc.oneof(fc.nat({ max: 100 }), fc.integer({ min: 60_000, max: 200_000 })),
      seed: fc.integer({ min: 0, max: 255 }),
      cuts: fc.array(fc.nat(), { maxLength: 12 }),
    })
    fc.assert(
      fc.property(chunked, ({ method: m, target: t, size, seed, cuts }) => {
        const whole = Buffer.alloc(size, seed)
        if (size > 0) whole[size - 1] = (seed + 1) % 256
        const at = [...new Set(cuts.map((cut) => (size === 0 ? 0 : cut % size)))].sort(
          (a, b) => a - b,
        )
        const streamed = new BodyFingerprint(m, t)
        let from = 0
        for (const to of [...at, size]) {
          streamed.add(whole.subarray(from, to))
          from = to
        }
        expect(streamed.digest()).toBe(fingerprintRequest(m, t, whole))
      }),
      { numRuns: RUNS / 10 },
    )
  })
})
