// FTP commands from the client: verb and argument, and a view that is safe to log.
// Pure: a line in, a value out.

import { lineText } from './line-framer.js'

export interface Command {
  /** Upper-case verb, e.g. `RETR`; empty for a blank line. */
  readonly verb: string
  /** The argument as latin1 text (bytes preserved one to one), empty if none. */
  readonly arg: string
}

/** A command as it may be logged: secrets replaced at parse time, never a raw line (STYLE.md 9). */
export interface LogSafeCommand {
  readonly verb: string
  readonly arg?: string
}

// Verbs whose argument is a secret.
const SECRET_ARG = new Set(['PASS', 'ACCT'])

// Telnet (RFC 854) commands a client may put before a command, IAC IP IAC DM before ABOR above
// all (RFC 959 4.1.3). Linux drops the byte sent as TCP urgent data (the DM), so a lone IAC, or
// IAC followed by any command byte, is stripped.
const TELNET_PREFIX = /^(?:\xff[\xf0-\xfe]?)+/

export function parseCommand(line: Buffer): Command {
  const text = lineText(line).replace(TELNET_PREFIX, '').replace(/^\s+/, '')
  const space = text.indexOf(' ')
  if (space === -1) return { verb: text.toUpperCase(), arg: '' }
  return { verb: text.slice(0, space).toUpperCase(), arg: text.slice(space + 1) }
}

export function logSafe(command: Command): LogSafeCommand {
  if (command.arg === '') return { verb: command.verb }
  if (SECRET_ARG.has(command.verb)) return { verb: command.verb, arg: '****' }
  return { verb: command.verb, arg: command.arg }
}

/**
 * Whether pending bytes that end in a bare CR are an ABOR whose LF was lost: python ftplib
 * sends `ABOR\r\n` with MSG_OOB, Linux delivers the last byte as urgent data and a normal
 * read never sees it.
 */
export function isAborWithoutLf(pending: Buffer): boolean {
  return parseCommand(pending).verb === 'ABOR'
}

/** Commands that open a data transfer over the data connection. */
export const TRANSFER_VERBS: ReadonlySet<string> = new Set(['RETR', 'STOR', 'STOU', 'APPE', 'LIST', 'NLST', 'MLSD'])

/** Transfer direction as seen from the client. */
export function transferDirection(verb: string): 'download' | 'upload' {
  return verb === 'STOR' || verb === 'STOU' || verb === 'APPE' ? 'upload' : 'download'
}
