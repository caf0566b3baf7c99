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
  // RFC 959 says SP, but servers split on any white space (ProFTPD's pr_str_get_word stops at
  // isspace): `PASS\thunter2` is a PASS to them, so it must be one here too.
  const space = text.search(/\s/)
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

/** The client's data address from PORT (RFC 959) or EPRT (RFC 2428); null when malformed. */
export interface ActiveTarget {
  readonly host: string
  readonly port: number
  readonly family: 4 | 6
}

/** `PORT h1,h2,h3,h4,p1,p2`: every value 0-255, digits only. */
export function parsePort(arg: string): ActiveTarget | null {
  const m = /^\s*(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})\s*$/.exec(arg)
  if (m === null) return null
  const n = m.slice(1, 7).map(Number)
  if (n.some((v) => v > 255)) return null
  const port = (n[4] as number) * 256 + (n[5] as number)
  if (port === 0) return null
  return { host: n.slice(0, 4).join('.'), port, family: 4 }
}

/** `EPRT <d>1<d>addr<d>port<d>` or protocol 2 for IPv6 (RFC 2428 2); the delimiter is 33-126. */
export function parseEprt(arg: string): ActiveTarget | null {
  const text = arg.trim()
  const d = text.charCodeAt(0)
  if (Number.isNaN(d) || d < 33 || d > 126) return null
  const parts = text.split(text[0] as string)
  // ['', proto, addr, port, '']
  if (parts.length !== 5 || parts[0] !== '' || parts[4] !== '') return null
  const [, proto, host, portText] = parts as [string, string, string, string, string]
  if (proto !== '1' && proto !== '2') return null
  if (!/^\d{1,5}$/.test(portText)) return null
  const port = Number(portText)
  if (port === 0 || port > 65535) return null
  const family = proto === '1' ? 4 : 6
  if (family === 4 && !/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) return null
  if (family === 4 && host.split('.').some((o) => Number(o) > 255)) return null
  if (family === 6 && (!host.includes(':') || !/^[0-9a-fA-F:.]+$/.test(host))) return null
  return { host, port, family }
}
