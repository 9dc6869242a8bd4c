import type { Random } from './random.js'

/** The part of JSON Schema the OpenAPI description uses. */
export interface Schema {
  readonly type?: string | readonly string[]
  readonly enum?: readonly unknown[]
  readonly const?: unknown
  readonly properties?: Readonly<Record<string, Schema>>
  readonly required?: readonly string[]
  readonly additionalProperties?: boolean | Schema
  readonly items?: Schema
  readonly oneOf?: readonly Schema[]
  readonly anyOf?: readonly Schema[]
  readonly allOf?: readonly Schema[]
  readonly $ref?: string
  readonly minimum?: number
  readonly maximum?: number
  readonly exclusiveMaximum?: number
  readonly minLength?: number
  readonly maxLength?: number
  readonly minItems?: number
  readonly maxItems?: number
  readonly pattern?: string
}

export type Json =
  null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json }

/** What field names mean to this API: values that get past validation into the domain. */
export interface DomainHints {
  /** Values that name real things (datastreams, schema ids), by field name. */
  readonly byField: Readonly<Record<string, readonly Json[]>>
}

/** Strings a careless parser or a careless log might trip on. */
export const HOSTILE_STRINGS: readonly string[] = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\u202eevil',
  '\ud800',
  '\udfff\ud800',
  '😀'.repeat(40),
  'é\u0301',
  '\r\nX-Injected: 1',
  '<script>alert(1)</script>',
  "'; DROP TABLE accounts; --",
  '../../etc/passwd',
  '%00',
  '%s%s%s%n',
  '${jndi:ldap://x}',
  '__proto__',
  'constructor',
  'x'.repeat(10_000),
  '\u00a0\u2028\u2029',
  'ＢＴＣＵＳＤＴ',
  'sch_' + 'f'.repeat(32),
  'sub_' + '0'.repeat(31) + 'g',
  '1e309',
  '-0',
  '9223372036854775808',
  '2026-13-45T99:99:99Z',
  '2026-01-01T00:00:00.0000000001Z',
]

/** Numbers at the edges of int64, of doubles and of every range the API has. */
export const HOSTILE_NUMBERS: readonly number[] = [
  0,
  -1,
  1,
  -0,
  0.5,
  1e-300,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 2,
  2 ** 63,
  -(2 ** 63),
  2 ** 64,
  1e308,
  -1e308,
  Number.MIN_VALUE,
  101,
  1001,
  540,
  541,
]

/** Number literals that JSON.stringify cannot write: put in the text as they are. */
export const HOSTILE_NUMBER_TEXTS: readonly string[] = [
  '1e999',
  '-1e999',
  '123456789012345678901234567890',
  '9223372036854775807',
  '9223372036854775808',
  '-9223372036854775809',
  '0.0000000000000000000000000001',
  '1.0',
  '1E2',
  '-0.0',
  '00',
  '0x10',
  'NaN',
  'Infinity',
  '+1',
]

export class SchemaValues {
  readonly #components: Readonly<Record<string, Schema>>
  readonly #hints: DomainHints
  readonly #random: Random

  constructor(components: Readonly<Record<string, Schema>>, hints: DomainHints, random: Random) {
    this.#components = components
    this.#hints = hints
    this.#random = random
  }

  resolve(schema: Schema): Schema {
    if (schema.$ref === undefined) return schema
    const name = schema.$ref.split('/').at(-1) ?? ''
    return this.#components[name] ?? {}
  }

  /** A value the schema allows, leaning on domain hints for fields that name real things. */
  valid(schema: Schema, field = '', depth = 0): Json {
    const random = this.#random
    const resolved = this.resolve(schema)
    const hinted = this.#hints.byField[field]
    if (hinted !== undefined && hinted.length > 0 && random.chance(0.8)) return random.pick(hinted)
    if (resolved.const !== undefined) return resolved.const as Json
    if (resolved.enum !== undefined && resolved.enum.length > 0)
      return random.pick(resolved.enum) as Json
    const choices = resolved.oneOf ?? resolved.anyOf
    if (choices !== undefined && choices.length > 0)
      return this.valid(random.pick(choices), field, depth)
    if (resolved.allOf !== undefined && resolved.allOf.length > 0)
      return this.valid(resolved.allOf[0] ?? {}, field, depth)
    const type = Array.isArray(resolved.type)
      ? random.pick(resolved.type as string[])
      : resolved.type
    switch (type) {
      case 'integer': {
        const min = resolved.minimum ?? 0
        const max = resolved.maximum ?? Math.min(resolved.exclusiveMaximum ?? 1_000, min + 1_000)
        return random.int(Math.ceil(min), Math.floor(Math.min(max, min + 1_000)))
      }
      case 'number':
        return random.next() * 1_000
      case 'boolean':
        return random.chance(0.5)
      case 'null':
        return null
      case 'string': {
        const length = random.int(resolved.minLength ?? 1, Math.min(resolved.maxLength ?? 12, 24))
        return random.string('abcdefghijklmnopqrstuvwxyz_0123456789', length)
      }
      case 'array': {
        if (depth > 4) return []
        const count = random.int(resolved.minItems ?? 0, Math.min(resolved.maxItems ?? 3, 3))
        return Array.from({ length: count }, () =>
          this.valid(resolved.items ?? {}, field, depth + 1),
        )
      }
      case 'object':
      case undefined: {
        if (resolved.properties === undefined) {
          if (type === undefined) return this.scalar()
          return {}
        }
        if (depth > 4) return {}
        const object: Record<string, Json> = {}
        const required = new Set(resolved.required ?? [])
        for (const [name, property] of Object.entries(resolved.properties)) {
          if (required.has(name) || random.chance(0.9))
            object[name] = this.valid(property, name, depth + 1)
        }
        return object
      }
      default:
        return this.scalar()
    }
  }

  /** Any JSON value, for a field whose schema says nothing. */
  scalar(): Json {
    const random = this.#random
    return random.pick<() => Json>([
      () => random.pick(HOSTILE_NUMBERS),
      () => random.pick(HOSTILE_STRINGS),
      () => random.chance(0.5),
      () => null,
      () => [],
      () => ({}),
      () => random.int(1, 540),
    ])()
  }

  /** A value of the wrong kind for the schema (or a hostile one of the right kind). */
  wrong(schema: Schema): Json {
    const random = this.#random
    const resolved = this.resolve(schema)
    return random.pick<() => Json>([
      () => random.pick(HOSTILE_STRINGS),
      () => random.pick(HOSTILE_NUMBERS),
      () => random.chance(0.5),
      () => null,
      () => [this.valid(resolved)],
      () => ({ value: this.valid(resolved) }),
      () => deepNesting(random.int(50, 1_000), random.chance(0.5)),
      () => (resolved.enum !== undefined ? `${String(resolved.enum[0])}x` : 'not-in-enum'),
      () => JSON.stringify(this.valid(resolved)),
    ])()
  }
}

/** `[[[...]]]` or `{"a":{"a":...}}`, `depth` levels deep. */
export function deepNesting(depth: number, arrays: boolean): Json {
  let value: Json = 1
  for (let level = 0; level < depth; level++) value = arrays ? [value] : { a: value }
  return value
}
