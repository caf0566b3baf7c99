// What the proxy does with one client command, given where the session stands: pass it on as
// it came, pass on something else, answer it itself, set up a data connection, or refuse it.
// Pure (STYLE.md 17): no socket, timer or logger; test/proxy/command-policy.test.ts is its table.

import type { ActiveMode, ClientTlsMode } from '../config-types.js'
import { addressClass, normalizeAddress } from '../net/address-policy.js'
import { parseEprt, parsePort, TRANSFER_VERBS, type ActiveTarget, type Command } from '../protocol/commands.js'
import type { CommandRefusal } from './outcomes.js'

/** What the decision depends on. */
export interface CommandState {
  /** The session is ending (a final reply is out, or the server left): commands are dropped. */
  readonly ending: boolean
  /** The client sent EPSV ALL (RFC 2428 4): only EPSV from now on. */
  readonly epsvAll: boolean
  /** The server answered EPSV with 500/502: the proxy asks it with PASV. */
  readonly serverWithoutEpsv: boolean
  /** A passive data connection is set up and waits for its transfer command. */
  readonly leasePending: boolean
  readonly activeMode: ActiveMode
  /** The control client's address, normalised: the only address a PORT/EPRT may name. */
  readonly clientAddress: string
  /** The family of the proxy's control connection to the server. */
  readonly serverFamily: 4 | 6
  /** TLS toward the client (--client-tls). */
  readonly clientTls: ClientTlsMode
  /** The client's control connection is TLS (after AUTH TLS). */
  readonly clientSecure: boolean
}

/** Data channel protection of one side (RFC 4217 9): C clear, P private. */
export type Protection = 'C' | 'P'

// Before AUTH TLS under --client-tls required: what may still be sent in clear.
const BEFORE_TLS = new Set(['AUTH', 'FEAT', 'QUIT', 'NOOP', 'HELP', 'SYST', 'PBSZ', 'PROT'])
// RFC 4217 4: TLS; SSL and TLS-C are older names still sent by clients (lftp, FileZilla).
const AUTH_TLS = new Set(['TLS', 'SSL', 'TLS-C'])

/** The form of reply the client gets to a passive request: 227, 229, or 200 after PORT/EPRT. */
export type PassiveForm = 227 | 229 | 'active'

export type CommandAction =
  /** Dropped: the session is ending. */
  | { readonly type: 'drop' }
  /** Passed on as it came; its reply streams back. `feat`: without the TLS features. */
  | { readonly type: 'forward'; readonly reply: 'plain' | 'feat' }
  /** A transfer command on the pending lease. */
  | { readonly type: 'transfer' }
  /** ABOR: the data legs are reset, and a clean `ABOR` goes to the server. */
  | { readonly type: 'abort'; readonly send: string }
  /** A passive request toward the server (`send`); the client gets `form`. */
  | { readonly type: 'passive'; readonly form: PassiveForm; readonly send: string | null; readonly active: ActiveTarget | null }
  /** --active-mode relay: the proxy takes a pool port and sends the server its own PORT/EPRT. */
  | { readonly type: 'relay'; readonly active: ActiveTarget }
  /** Answered by the proxy itself (EPSV ALL, PBSZ, PROT). */
  | { readonly type: 'reply'; readonly text: string }
  /** AUTH TLS: the control connection becomes TLS (both sides, as --upstream-tls says). */
  | { readonly type: 'auth' }
  /** Refused by the proxy itself, counted by reason. */
  | { readonly type: 'refuse'; readonly reason: CommandRefusal; readonly text: string }

/** What the proxy does with `command`; `set` says what the session learns from it. */
export function decideCommand(
  state: CommandState,
  command: Command,
): { readonly action: CommandAction; readonly set?: { readonly user?: string; readonly quit?: true; readonly epsvAll?: true; readonly prot?: Protection } } {
  if (state.ending) return { action: { type: 'drop' } }
  const verb = command.verb
  if (state.clientTls === 'required' && !state.clientSecure && !BEFORE_TLS.has(verb)) {
    // Nothing reaches the server before the client is protected: not even USER.
    return refuse('tls_required', '530 This proxy requires TLS: send AUTH TLS first.')
  }
  if (state.clientTls !== 'off' && (verb === 'AUTH' || verb === 'PBSZ' || verb === 'PROT')) return tlsCommand(state, command)
  // RFC 4217 12.3: CCC would put the rest of the session in clear, past a proxy that promised TLS.
  if (verb === 'CCC') return refuse('tls', '534 CCC is refused: the control connection stays protected.')
  // REIN would have to undo TLS on both sides at once; refused while TLS is on.
  if (verb === 'REIN' && state.clientSecure) return refuse('tls', '502 REIN is not supported on a TLS session; reconnect instead.')
  switch (verb) {
    case 'USER':
      return { action: { type: 'forward', reply: 'plain' }, set: { user: command.arg } }
    case 'QUIT':
      return { action: { type: 'forward', reply: 'plain' }, set: { quit: true } }
    case 'AUTH':
    case 'PBSZ':
    case 'PROT':
      // --client-tls off: answered at once, never passed on: after a server's 234 the client
      // would start a TLS handshake the proxy could not read. Clients that only allow TLS
      // (FileZilla's default, lftp's ftp:ssl-allow) go on in clear after a 5xx.
      return refuse('tls', `502 ${verb} is not supported by this proxy: TLS is not available through it.`)
    case 'FEAT':
      return { action: { type: 'forward', reply: 'feat' } }
    case 'ABOR':
      // RFC 959 4.1.3: ABOR ends the transfer in progress. A server that reads no urgent data
      // notices only when its data connection closes, so the proxy resets both legs first, and
      // sends a clean ABOR whatever Telnet bytes or lost LF came with it.
      return { action: { type: 'abort', send: 'ABOR\r\n' } }
    case 'LPSV':
    case 'LPRT':
      // RFC 1639 long addresses: refused, so clients fall back to what the proxy rewrites.
      return refuse('unsupported', `502 ${verb} is not supported by this proxy; use EPSV or PASV.`)
    case 'PASV':
      if (state.epsvAll) return refuse('epsv_all', '503 PASV refused: EPSV ALL was sent, only EPSV is allowed (RFC 2428).')
      return { action: { type: 'passive', form: 227, send: null, active: null } }
    case 'EPSV':
      if (command.arg.trim().toUpperCase() === 'ALL') {
        // RFC 2428 4: after EPSV ALL the client uses EPSV only; the proxy enforces that on the
        // client side and stays free to drive the server with PASV if it must.
        return { action: { type: 'reply', text: '200 EPSV ALL command successful.' }, set: { epsvAll: true } }
      }
      // The protocol argument (1 or 2) names the client's side; toward the server the proxy uses
      // its own control connection's family, or PASV for a server without EPSV.
      return { action: { type: 'passive', form: 229, send: state.serverWithoutEpsv ? 'PASV\r\n' : 'EPSV\r\n', active: null } }
    case 'PORT':
    case 'EPRT':
      return { action: activeRequest(state, command) }
    default:
      if (TRANSFER_VERBS.has(verb) && state.leasePending) return { action: { type: 'transfer' } }
      return { action: { type: 'forward', reply: 'plain' } }
  }
}

/** AUTH, PBSZ and PROT with the client side's TLS on: the proxy answers each for its own side (RFC 4217). */
function tlsCommand(state: CommandState, command: Command): { readonly action: CommandAction; readonly set?: { readonly prot: Protection } } {
  const arg = command.arg.trim().toUpperCase()
  if (command.verb === 'AUTH') {
    if (state.clientSecure) return reply('503 TLS is already on for this connection.')
    if (!AUTH_TLS.has(arg)) return refuse('unsupported', `504 AUTH ${arg === '' ? 'needs a mechanism' : 'mechanism not supported'}; use AUTH TLS.`)
    return { action: { type: 'auth' } }
  }
  if (!state.clientSecure) return reply(`503 ${command.verb} needs AUTH TLS first.`)
  if (command.verb === 'PBSZ') return reply('200 PBSZ=0')
  // RFC 4217 9: C and P; S and E (integrity only) are not offered by TLS.
  if (arg === 'P' || arg === 'C') return { ...reply(`200 Protection level set to ${arg}.`), set: { prot: arg } }
  if (arg === 'S' || arg === 'E') return reply('536 Only protection levels C and P are supported.')
  return refuse('malformed', '504 PROT takes C or P.')
}

function reply(text: string): { readonly action: CommandAction } {
  return { action: { type: 'reply', text } }
}

function refuse(reason: CommandRefusal, text: string): { readonly action: CommandAction } {
  return { action: { type: 'refuse', reason, text } }
}

function activeRequest(state: CommandState, command: Command): CommandAction {
  const verb = command.verb
  if (state.epsvAll) return { type: 'refuse', reason: 'epsv_all', text: `503 ${verb} refused: EPSV ALL was sent, only EPSV is allowed (RFC 2428).` }
  const parsed = verb === 'PORT' ? parsePort(command.arg) : parseEprt(command.arg)
  if (parsed === null) return { type: 'refuse', reason: 'malformed', text: `501 Syntax error in ${verb} parameters.` }
  // lftp on loopback sends `EPRT |2|::|port|`: an unspecified address can only mean the client
  // itself, and the proxy dials nothing else. The address is dialled as checked: normalised,
  // never the client's raw spelling of it.
  const host = addressClass(parsed.host) === 'unspecified' ? state.clientAddress : normalizeAddress(parsed.host)
  // RFC 2577 4: a data connection only to the control client's own address, never to a
  // privileged port (the FTP bounce attack).
  if (host !== state.clientAddress || parsed.port < 1024) {
    return { type: 'refuse', reason: 'bounce', text: `504 ${verb} refused: the data address must be your own address and a port from 1024 up.` }
  }
  const active: ActiveTarget = { ...parsed, host }
  if (state.activeMode === 'deny') return { type: 'refuse', reason: 'unsupported', text: '502 Active mode is disabled on this proxy; use PASV or EPSV.' }
  if (state.activeMode === 'relay') return { type: 'relay', active }
  // Active mode toward the client, passive toward the server: the proxy dials both.
  const send = state.serverWithoutEpsv || state.serverFamily === 4 ? 'PASV\r\n' : 'EPSV\r\n'
  return { type: 'passive', form: 'active', send, active }
}
