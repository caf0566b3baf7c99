// One catalogue of error classes and stable codes (undici lib/core/errors.js, fastify lib/errors.js).
// Every error the proxy raises on purpose carries one of these codes; anything else is a bug.

export const ErrorCodes = {
  CONFIG_INVALID: 'Settings are invalid',
  LINE_TOO_LONG: 'A control line is longer than the limit',
  BAD_PASSIVE_REPLY: 'A 227/229 reply names no valid address and port',
  POOL_EXHAUSTED: 'Every port of the passive pool is leased',
  DATA_CONNECT_FAILED: 'No data endpoint of the server answered',
} as const

export type ErrorCode = keyof typeof ErrorCodes

export class ProxyError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ErrorCodes[code], options)
    this.name = 'ProxyError'
    this.code = code
  }
}

/** A setting that is missing or breaks a rule; the message names the setting and the rule. */
export class ConfigError extends ProxyError {
  readonly setting: string
  constructor(setting: string, rule: string) {
    super('CONFIG_INVALID', `${setting}: ${rule}`)
    this.name = 'ConfigError'
    this.setting = setting
  }
}

export class LineTooLongError extends ProxyError {
  readonly limit: number
  /** Complete lines framed before the long one, in the same push: still to be handled. */
  readonly linesBefore: readonly Buffer[]
  constructor(limit: number, linesBefore: readonly Buffer[] = []) {
    super('LINE_TOO_LONG', `control line longer than ${limit} bytes`)
    this.name = 'LineTooLongError'
    this.limit = limit
    this.linesBefore = linesBefore
  }
}

export class BadPassiveReplyError extends ProxyError {
  constructor(detail: string) {
    super('BAD_PASSIVE_REPLY', `bad passive reply: ${detail}`)
    this.name = 'BadPassiveReplyError'
  }
}

/** One connect tried by dialFirst (src/net/dial.ts). */
export interface DialAttempt {
  readonly host: string
  readonly port: number
  readonly kind: 'control' | 'advertised'
  readonly error?: string
  readonly ms: number
}

/** Why no candidate answered: the last one's connect was refused, timed out, or had no route. */
export type DialFailure = 'refused' | 'timeout' | 'unreachable'

/** No data endpoint of the server answered; every attempt is kept for the log line. */
export class DialError extends ProxyError {
  readonly reason: DialFailure
  readonly attempts: readonly DialAttempt[]
  constructor(reason: DialFailure, attempts: readonly DialAttempt[]) {
    const last = attempts[attempts.length - 1]
    super('DATA_CONNECT_FAILED', last?.error ?? reason)
    this.name = 'DialError'
    this.reason = reason
    this.attempts = attempts
  }
}
