import { ApiError } from '../api-error.js'
import type { ExactDecimal } from './exact-decimal.js'
import {
  addDecimals,
  compareDecimals,
  divideDecimals,
  exactDecimal,
  isExactDecimal,
  multiplyDecimals,
  negateDecimal,
  parseExactDecimal,
  subtractDecimals,
} from './exact-decimal.js'

/**
 * A column `transform`: a small, safe subset of SQL expressions over `{v}`, the extracted value.
 * Parsed here by hand into an AST and evaluated by walking it; never eval or new Function.
 *
 * ```
 * expr       := or
 * or         := and (OR and)*
 * and        := not (AND not)*
 * not        := NOT not | comparison
 * comparison := additive ((= | <> | != | < | <= | > | >=) additive)?
 * additive   := term ((+ | -) term)*
 * term       := unary ((* | /) unary)*
 * unary      := - unary | primary
 * primary    := number | 'string' | {v} | TRUE | FALSE | NULL | ( expr )
 *             | CASE (WHEN expr THEN expr)+ [ELSE expr] END
 * ```
 *
 * Keywords are case-insensitive; a string literal doubles `'` to contain one. Semantics follow
 * SQL: NULL propagates through arithmetic and comparisons, a WHEN matches only a true (or
 * non-zero) condition, x / 0 is NULL. Arithmetic is in 64-bit floating point, except over a
 * `decimal(N)` value, where it is exact (see {@link ArithmeticMode}).
 */
export type TransformValue = number | string | boolean | null | ExactDecimal

/**
 * How numbers compute: `float` in 64-bit floating point (`f64`, `i64` and other inputs);
 * `decimal` exactly, for a `decimal(N)` input: numbers are {@link ExactDecimal}s, literals are
 * read from their text (`0.1` is one tenth), `+ - *` are exact and `/` keeps 40 places.
 */
export type ArithmeticMode = 'float' | 'decimal'

export type TransformNode =
  | { readonly kind: 'value' }
  | { readonly kind: 'literal'; readonly value: TransformValue; readonly exact?: ExactDecimal }
  | { readonly kind: 'negate'; readonly operand: TransformNode }
  | { readonly kind: 'not'; readonly operand: TransformNode }
  | {
      readonly kind: 'binary'
      readonly operator: BinaryOperator
      readonly left: TransformNode
      readonly right: TransformNode
    }
  | {
      readonly kind: 'case'
      readonly branches: readonly { readonly when: TransformNode; readonly then: TransformNode }[]
      readonly otherwise: TransformNode
    }

type BinaryOperator = '+' | '-' | '*' | '/' | '=' | '<>' | '<' | '<=' | '>' | '>=' | 'AND' | 'OR'

/** The type of what a transform produces; `input` is the type of `{v}` itself. */
export type TransformType = 'input' | 'number' | 'string' | 'bool'

const MAX_LENGTH = 1000
const MAX_DEPTH = 32
const KEYWORDS = new Set([
  'CASE',
  'WHEN',
  'THEN',
  'ELSE',
  'END',
  'AND',
  'OR',
  'NOT',
  'TRUE',
  'FALSE',
  'NULL',
])

type Token =
  | { readonly type: 'number'; readonly value: number; readonly text: string; readonly at: number }
  | { readonly type: 'string'; readonly value: string; readonly at: number }
  | { readonly type: 'keyword'; readonly value: string; readonly at: number }
  | { readonly type: 'symbol'; readonly value: string; readonly at: number }
  | { readonly type: 'value'; readonly at: number }
  | { readonly type: 'end'; readonly at: number }

function reject(source: string, message: string): ApiError {
  return new ApiError('invalid_argument', `Invalid transform "${source}": ${message}`)
}

function tokenize(source: string): Token[] {
  const tokens: Token[] = []
  let index = 0
  while (index < source.length) {
    const rest = source.slice(index)
    const space = /^\s+/.exec(rest)
    if (space !== null) {
      index += space[0].length
      continue
    }
    if (rest.startsWith('{v}')) {
      tokens.push({ type: 'value', at: index })
      index += 3
      continue
    }
    const number = /^\d+(\.\d+)?/.exec(rest)
    if (number !== null) {
      tokens.push({ type: 'number', value: Number(number[0]), text: number[0], at: index })
      index += number[0].length
      continue
    }
    if (rest.startsWith("'")) {
      const literal = /^'((?:[^']|'')*)'/.exec(rest)
      if (literal === null)
        throw reject(source, `unterminated string at position ${String(index + 1)}`)
      tokens.push({ type: 'string', value: (literal[1] ?? '').replaceAll("''", "'"), at: index })
      index += literal[0].length
      continue
    }
    const word = /^[A-Za-z_]+/.exec(rest)
    if (word !== null) {
      const upper = word[0].toUpperCase()
      if (!KEYWORDS.has(upper))
        throw reject(
          source,
          `unknown word "${word[0]}" (only {v}, numbers, 'strings', CASE WHEN THEN ELSE END, AND, OR, NOT, TRUE, FALSE, NULL are allowed)`,
        )
      tokens.push({ type: 'keyword', value: upper, at: index })
      index += word[0].length
      continue
    }
    const symbol = /^(<>|!=|<=|>=|[-+*/()=<>])/.exec(rest)
    if (symbol !== null) {
      tokens.push({ type: 'symbol', value: symbol[0] === '!=' ? '<>' : symbol[0], at: index })
      index += symbol[0].length
      continue
    }
    throw reject(source, `unexpected character "${rest[0] ?? ''}" at position ${String(index + 1)}`)
  }
  tokens.push({ type: 'end', at: source.length })
  return tokens
}

/** Parses a transform or throws a 400 that names what is wrong and where. */
export function parseTransform(source: string): TransformNode {
  if (source.length > MAX_LENGTH)
    throw new ApiError(
      'invalid_argument',
      `A transform is at most ${String(MAX_LENGTH)} characters`,
    )
  const tokens = tokenize(source)
  let position = 0
  let depth = 0
  const peek = (): Token => tokens[position] ?? { type: 'end', at: source.length }
  const isWord = (word: string) => {
    const token = peek()
    return token.type === 'keyword' && token.value === word
  }
  const isSymbol = (symbol: string) => {
    const token = peek()
    return token.type === 'symbol' && token.value === symbol
  }
  const describe = (token: Token) =>
    token.type === 'end'
      ? 'the end'
      : `"${source.slice(token.at, token.at + 10).split(/\s/)[0] ?? ''}" at position ${String(token.at + 1)}`
  const expect = (word: string) => {
    const token = peek()
    if ((token.type === 'keyword' || token.type === 'symbol') && token.value === word) {
      position++
      return
    }
    throw reject(source, `expected ${word} but found ${describe(token)}`)
  }
  const nested = <T>(parse: () => T): T => {
    if (++depth > MAX_DEPTH) throw reject(source, 'nested too deeply')
    try {
      return parse()
    } finally {
      depth--
    }
  }

  const expression = (): TransformNode => nested(or)
  const or = (): TransformNode => {
    let left = and()
    while (isWord('OR')) {
      position++
      left = { kind: 'binary', operator: 'OR', left, right: and() }
    }
    return left
  }
  const and = (): TransformNode => {
    let left = not()
    while (isWord('AND')) {
      position++
      left = { kind: 'binary', operator: 'AND', left, right: not() }
    }
    return left
  }
  const not = (): TransformNode => {
    if (isWord('NOT')) {
      position++
      return { kind: 'not', operand: nested(not) }
    }
    return comparison()
  }
  const comparison = (): TransformNode => {
    const left = additive()
    const token = peek()
    if (token.type === 'symbol' && ['=', '<>', '<', '<=', '>', '>='].includes(token.value)) {
      position++
      return { kind: 'binary', operator: token.value as BinaryOperator, left, right: additive() }
    }
    return left
  }
  const additive = (): TransformNode => {
    let left = term()
    while (isSymbol('+') || isSymbol('-')) {
      const operator = (peek() as { value: '+' | '-' }).value
      position++
      left = { kind: 'binary', operator, left, right: term() }
    }
    return left
  }
  const term = (): TransformNode => {
    let left = unary()
    while (isSymbol('*') || isSymbol('/')) {
      const operator = (peek() as { value: '*' | '/' }).value
      position++
      left = { kind: 'binary', operator, left, right: unary() }
    }
    return left
  }
  const unary = (): TransformNode => {
    if (isSymbol('-')) {
      position++
      return { kind: 'negate', operand: nested(unary) }
    }
    return primary()
  }
  const primary = (): TransformNode => {
    const token = peek()
    position++
    switch (token.type) {
      case 'value':
        return { kind: 'value' }
      case 'number':
        return {
          kind: 'literal',
          value: token.value,
          exact: parseExactDecimal(token.text) ?? exactDecimal(0n, 0),
        }
      case 'string':
        return { kind: 'literal', value: token.value }
      case 'symbol':
        if (token.value === '(') {
          const inner = expression()
          expect(')')
          return inner
        }
        break
      case 'keyword':
        if (token.value === 'TRUE') return { kind: 'literal', value: true }
        if (token.value === 'FALSE') return { kind: 'literal', value: false }
        if (token.value === 'NULL') return { kind: 'literal', value: null }
        if (token.value === 'CASE') return caseExpression()
        break
      case 'end':
        break
    }
    position--
    throw reject(source, `expected a value but found ${describe(token)}`)
  }
  const caseExpression = (): TransformNode => {
    const branches: { when: TransformNode; then: TransformNode }[] = []
    do {
      expect('WHEN')
      const when = expression()
      expect('THEN')
      branches.push({ when, then: expression() })
    } while (isWord('WHEN'))
    let otherwise: TransformNode = { kind: 'literal', value: null }
    if (isWord('ELSE')) {
      position++
      otherwise = expression()
    }
    expect('END')
    return { kind: 'case', branches, otherwise }
  }

  const root = expression()
  if (peek().type !== 'end') throw reject(source, `unexpected ${describe(peek())}`)
  return root
}

/** What the transform produces, so that typed outputs (Parquet) know their column type. */
export function transformType(node: TransformNode): TransformType {
  switch (node.kind) {
    case 'value':
      return 'input'
    case 'literal':
      return typeof node.value === 'number'
        ? 'number'
        : typeof node.value === 'boolean'
          ? 'bool'
          : 'string'
    case 'negate':
      return 'number'
    case 'not':
      return 'bool'
    case 'binary':
      return ['+', '-', '*', '/'].includes(node.operator) ? 'number' : 'bool'
    case 'case': {
      const types = new Set(
        [...node.branches.map((branch) => branch.then), node.otherwise]
          .filter((branch) => !(branch.kind === 'literal' && branch.value === null))
          .map(transformType),
      )
      const [only] = types
      return types.size === 1 && only !== undefined ? only : 'string'
    }
  }
}

function toNumber(value: TransformValue): number | null {
  if (value === null) return null
  if (typeof value === 'number') return value
  if (typeof value === 'boolean') return value ? 1 : 0
  if (isExactDecimal(value)) return Number(value.unscaled) / 10 ** value.scale
  const parsed = Number(value)
  return value.trim() === '' || Number.isNaN(parsed) ? null : parsed
}

function toDecimal(value: TransformValue): ExactDecimal | null {
  if (value === null) return null
  if (isExactDecimal(value)) return value
  if (typeof value === 'boolean') return exactDecimal(value ? 1n : 0n, 0)
  if (typeof value === 'number')
    return Number.isFinite(value) ? (parseExactDecimal(String(value)) ?? null) : null
  return parseExactDecimal(value) ?? null
}

function isTrue(value: TransformValue): boolean {
  if (isExactDecimal(value)) return value.unscaled !== 0n
  return value === true || (typeof value === 'number' && value !== 0)
}

function compare(left: TransformValue, right: TransformValue, mode: ArithmeticMode): number | null {
  if (left === null || right === null) return null
  if (typeof left === 'string' && typeof right === 'string')
    return left < right ? -1 : left > right ? 1 : 0
  if (mode === 'decimal') {
    const a = toDecimal(left)
    const b = toDecimal(right)
    return a === null || b === null ? null : compareDecimals(a, b)
  }
  const a = toNumber(left)
  const b = toNumber(right)
  if (a === null || b === null) return null
  return a - b
}

function arithmetic(
  operator: '+' | '-' | '*' | '/',
  left: TransformValue,
  right: TransformValue,
  mode: ArithmeticMode,
): TransformValue {
  if (mode === 'decimal') {
    const a = toDecimal(left)
    const b = toDecimal(right)
    if (a === null || b === null) return null
    if (operator === '+') return addDecimals(a, b)
    if (operator === '-') return subtractDecimals(a, b)
    if (operator === '*') return multiplyDecimals(a, b)
    return divideDecimals(a, b) ?? null
  }
  const a = toNumber(left)
  const b = toNumber(right)
  if (a === null || b === null) return null
  if (operator === '+') return a + b
  if (operator === '-') return a - b
  if (operator === '*') return a * b
  return b === 0 ? null : a / b
}

/** Evaluates a parsed transform for one extracted value. */
export function evaluateTransform(
  node: TransformNode,
  v: TransformValue,
  mode: ArithmeticMode = 'float',
): TransformValue {
  switch (node.kind) {
    case 'value':
      return v
    case 'literal':
      return mode === 'decimal' && node.exact !== undefined ? node.exact : node.value
    case 'negate': {
      const operand = evaluateTransform(node.operand, v, mode)
      if (mode === 'decimal') {
        const exact = toDecimal(operand)
        return exact === null ? null : negateDecimal(exact)
      }
      const number = toNumber(operand)
      return number === null ? null : -number
    }
    case 'not': {
      const operand = evaluateTransform(node.operand, v, mode)
      return operand === null ? null : !isTrue(operand)
    }
    case 'case': {
      for (const branch of node.branches)
        if (isTrue(evaluateTransform(branch.when, v, mode)))
          return evaluateTransform(branch.then, v, mode)
      return evaluateTransform(node.otherwise, v, mode)
    }
    case 'binary': {
      const left = evaluateTransform(node.left, v, mode)
      const right = evaluateTransform(node.right, v, mode)
      switch (node.operator) {
        case 'AND':
          if (left === false || right === false) return false
          return left === null || right === null ? null : isTrue(left) && isTrue(right)
        case 'OR':
          if (isTrue(left) || isTrue(right)) return true
          return left === null || right === null ? null : false
        case '=':
        case '<>':
        case '<':
        case '<=':
        case '>':
        case '>=': {
          const order = compare(left, right, mode)
          if (order === null) return null
          return {
            '=': order === 0,
            '<>': order !== 0,
            '<': order < 0,
            '<=': order <= 0,
            '>': order > 0,
            '>=': order >= 0,
          }[node.operator]
        }
        case '+':
        case '-':
        case '*':
        case '/':
          return arithmetic(node.operator, left, right, mode)
      }
    }
  }
}
