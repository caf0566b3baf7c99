// FTP replies: multi-line assembly (RFC 959 4.2) and the passive replies 227 (RFC 959) and
// 229 (RFC 2428). Pure: bytes and strings in, values out.

import { BadPassiveReplyError, LineTooLongError } from '../errors.js'
import { lineText } from './line-framer.js'

export interface Reply {
  /** The reply code, or null for a line that is not part of any reply (sent as is). */
  readonly code: number | null
  /** The raw lines, terminators included, exactly as received. */
  readonly lines: readonly Buffer[]
}

const CODE_START = /^(\d{3})([ -]|$)/

/**
 * Where a reply line stands (RFC 959 4.2), for a reader that passes replies on line by line:
 * its code, and whether it opens a multi-line reply (`ddd-`); null for a line with no code.
 */
export function replyLineCode(text: string): { readonly code: number; readonly opens: boolean } | null {
  const m = CODE_START.exec(text)
  return m === null ? null : { code: Number(m[1]), opens: m[2] === '-' }
}

/**
 * Groups reply lines into replies. RFC 959 4.2: a multi-line reply starts with `ddd-` and ends
 * on a line that starts with the same code followed by a space (or ends there); the lines in
 * between may say anything, including other codes.
 */
export class ReplyAssembler {
  readonly #maxReplyBytes: number
  #open: { code: number; lines: Buffer[]; bytes: number } | null = null

  constructor(maxReplyBytes: number) {
    this.#maxReplyBytes = maxReplyBytes
  }

  /** Whether a multi-line reply is open. */
  get inReply(): boolean {
    return this.#open !== null
  }

  /** Feeds one line; returns the reply it completes, or null while a multi-line reply is open. */
  push(line: Buffer): Reply | null {
    const text = lineText(line)
    const open = this.#open
    if (open !== null) {
      open.bytes += line.length
      if (open.bytes > this.#maxReplyBytes) throw new LineTooLongError(this.#maxReplyBytes)
      open.lines.push(line)
      const end = CODE_START.exec(text)
      if (end !== null && Number(end[1]) === open.code && end[2] !== '-') {
        this.#open = null
        return { code: open.code, lines: open.lines }
      }
      return null
    }
    const start = CODE_START.exec(text)
    if (start === null) return { code: null, lines: [line] }
    const code = Number(start[1])
    if (start[2] === '-') {
      this.#open = { code, lines: [line], bytes: line.length }
      return null
    }
    return { code, lines: [line] }
  }
}

/** The text of a reply, lines joined with LF, terminators stripped, latin1. */
export function replyText(reply: Reply): string {
  return reply.lines.map(lineText).join('\n')
}

export interface PassiveEndpoint {
  /** The IPv4 address a 227 names; null for a 229, which names only a port (RFC 2428 3). */
  readonly host: string | null
  readonly port: number
}

// Six numbers separated by commas, anywhere in the reply: `(h1,h2,h3,h4,p1,p2)`, `= h1,...`,
// `Entering Passive Mode. h1,...`. Digits only: a sign, or a seventh number before or after
// (spaces around commas included), means it is not a tuple.
const TUPLE = /(?<![\d-]|,\s*)(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})(?!\d|\s*,)/

/** Parses a 227 reply (any line of it). Throws BadPassiveReplyError on a missing or invalid tuple. */
export function parse227(text: string): PassiveEndpoint {
  const m = TUPLE.exec(text)
  if (m === null) throw new BadPassiveReplyError('227 names no h1,h2,h3,h4,p1,p2 tuple')
  const n = m.slice(1, 7).map(Number)
  // Unlike basic-ftp's `& 255`, a value over 255 is refused rather than wrapped.
  if (n.some((v) => v > 255)) throw new BadPassiveReplyError(`227 tuple ${m.slice(1, 7).join(',')} has a value over 255`)
  const [h1, h2, h3, h4, p1, p2] = n as [number, number, number, number, number, number]
  const port = p1 * 256 + p2
  if (port === 0) throw new BadPassiveReplyError('227 names port 0')
  return { host: `${h1}.${h2}.${h3}.${h4}`, port }
}

/**
 * Parses a 229 reply. RFC 2428 3: `(<d><d><d><port><d>)` where the delimiter is any ASCII
 * character from 33 to 126, the same four times; the address fields are empty.
 */
export function parse229(text: string): PassiveEndpoint {
  const open = text.indexOf('(')
  for (let i = open; i !== -1; i = text.indexOf('(', i + 1)) {
    const d = text.charCodeAt(i + 1)
    if (d < 33 || d > 126 || (d >= 0x30 && d <= 0x39)) continue
    const delim = text[i + 1] as string
    if (text[i + 2] !== delim || text[i + 3] !== delim) continue
    const close = text.indexOf(delim, i + 4)
    if (close === -1 || text[close + 1] !== ')') continue
    const digits = text.slice(i + 4, close)
    if (!/^\d{1,5}$/.test(digits)) throw new BadPassiveReplyError(`229 port "${digits}" is not a number`)
    const port = Number(digits)
    if (port === 0 || port > 65535) throw new BadPassiveReplyError(`229 port ${port} is out of range 1-65535`)
    return { host: null, port }
  }
  throw new BadPassiveReplyError('229 names no (|||port|) field')
}

/** Parses the passive endpoint of a 227 or 229 reply by its code. */
export function parsePassiveReply(code: 227 | 229, text: string): PassiveEndpoint {
  return code === 227 ? parse227(text) : parse229(text)
}

/** The canonical 227 (RFC 959 4.1.2 PASV). `host` must be dotted IPv4. */
export function format227(host: string, port: number): string {
  return `227 Entering Passive Mode (${host.split('.').join(',')},${port >> 8},${port & 255}).\r\n`
}

/** The canonical 229 (RFC 2428 3). */
export function format229(port: number): string {
  return `229 Entering Extended Passive Mode (|||${port}|)\r\n`
}
