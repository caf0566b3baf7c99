// The network side of `diagnose`: what an engineer reads off a packet capture, gathered by
// doing it. Connect, log in, send PASV and EPSV, dial every candidate address of each reply and
// list a directory over each one that answers. Records what happened; judges nothing (that is
// verdict.ts, a pure function of these findings).

import type { Socket } from 'node:net'
import { BadPassiveReplyError } from '../errors.js'
import { addressClass, normalizeAddress, type DataCandidate } from '../net/address-policy.js'
import { parsePassiveReply, replyText, type PassiveEndpoint, type Reply } from '../protocol/replies.js'
import { connectTo } from '../net/dial.js'
import { FtpControl } from '../net/ftp-control.js'
import type { DiagnoseOptions } from './args.js'
import type { ControlFindings, Findings, Listing, LoginFindings, PassiveFindings, Probe } from './report.js'

/** Runs the whole conversation. Never throws for anything the server or the network does. */
export async function gatherFindings(options: DiagnoseOptions): Promise<Findings> {
  const target = { host: options.host, port: options.port }
  const login: LoginFindings = { user: options.user, ok: false, reply: null }
  const findings = (control: ControlFindings, l = login, pasv = notSent('PASV'), epsv = notSent('EPSV')): Findings => ({
    target,
    control,
    login: l,
    pasv,
    epsv,
  })

  const started = performance.now()
  let control: FtpControl
  try {
    control = await FtpControl.open(options.host, options.port, { timeoutMs: options.timeoutMs })
  } catch (err) {
    return findings({ ok: false, peer: null, ms: since(started), greeting: null, error: connectErrorText(err) })
  }
  // QUIT only in a session the server opened with a 220: after a 421 (or nothing) there is
  // nothing to end, and the QUIT would wait out the timeout for a reply that never comes.
  let opened = false
  try {
    const connected = { ok: true, peer: control.peer, ms: since(started) }
    let greeting: Reply
    try {
      greeting = await control.read()
    } catch (err) {
      return findings({ ...connected, greeting: null }, { ...login, error: messageOf(err) })
    }
    opened = greeting.code === 220
    const controlFindings: ControlFindings = { ...connected, greeting: replyText(greeting) }
    const loggedIn = await logIn(control, greeting, options)
    if (!loggedIn.ok) return findings(controlFindings, loggedIn)
    const pasv = await passive(control, 'PASV', options)
    const epsv = await passive(control, 'EPSV', options)
    return findings(controlFindings, loggedIn, pasv, epsv)
  } finally {
    if (opened) await control.quit()
    else control.close()
  }
}

function notSent(command: 'PASV' | 'EPSV'): PassiveFindings {
  return { command, status: 'not_sent', reply: null, code: null, advertised: null, class: null, matchesControl: null, probes: [] }
}

async function logIn(control: FtpControl, greeting: Reply, options: DiagnoseOptions): Promise<LoginFindings> {
  const base = { user: options.user, ok: false }
  // RFC 959 4.2: 120 means "ready in nnn minutes", a 220 follows; anything else refuses the session.
  if (greeting.code !== 220) return { ...base, reply: replyText(greeting) }
  try {
    let reply = await control.command(`USER ${options.user}`)
    if (reply.code === 331) reply = await control.command(`PASS ${options.password}`)
    return { ...base, ok: reply.code === 230, reply: replyText(reply) }
  } catch (err) {
    return { ...base, reply: null, error: messageOf(err) }
  }
}

async function passive(control: FtpControl, command: 'PASV' | 'EPSV', options: DiagnoseOptions): Promise<PassiveFindings> {
  const empty = notSent(command)
  let reply: Reply
  try {
    reply = await control.command(command)
  } catch (err) {
    return { ...empty, status: 'no_reply', error: messageOf(err) }
  }
  const recorded = { ...empty, reply: replyText(reply), code: reply.code }
  let endpoint: PassiveEndpoint
  try {
    endpoint = parsed(reply)
  } catch (err) {
    if (!(err instanceof BadPassiveReplyError)) return { ...recorded, status: 'refused' }
    return { ...recorded, status: 'bad_reply', error: err.message }
  }
  const peer = control.peer
  const host = endpoint.host === null ? null : normalizeAddress(endpoint.host)
  const probes: Probe[] = []
  // The first dial uses the recorded reply's port; the server's listener takes one connection,
  // so each later dial asks for a fresh port.
  let port: number | null = endpoint.port
  for (const candidate of probeOrder(host, peer)) {
    if (addressClass(candidate.host) === 'unspecified') {
      // The unspecified address is never dialled: on Linux that reaches this very host.
      probes.push({ ...candidate, port: endpoint.port, ok: false, ms: 0, error: 'not dialled: the unspecified address names no host' })
      continue
    }
    let probePort = port
    port = null
    if (probePort === null) {
      try {
        probePort = parsed(await control.command(command)).port
      } catch (err) {
        probes.push({ ...candidate, port: endpoint.port, ok: false, ms: 0, error: `a fresh ${command} for this probe failed: ${messageOf(err)}` })
        continue
      }
    }
    probes.push(await probe(control, candidate, probePort, options))
  }
  return {
    ...recorded,
    status: 'ok',
    advertised: { host, port: endpoint.port },
    class: host === null ? null : addressClass(host),
    matchesControl: host === null ? null : host === peer,
    probes,
  }
}

/** The endpoint of a 227 or 229 (by code, whatever was sent); throws the reply text otherwise. */
function parsed(reply: Reply): PassiveEndpoint {
  if (reply.code !== 227 && reply.code !== 229) throw new Error(replyText(reply))
  return parsePassiveReply(reply.code, replyText(reply))
}

/**
 * What to probe: the advertised address first (what a client honouring the 227 dials), then the
 * control connection's peer; one of them when they are the same, the peer alone for a 229. The
 * unspecified address is kept, not dialled, so the verdict sees what clients were told.
 */
function probeOrder(advertised: string | null, peer: string): DataCandidate[] {
  const control: DataCandidate = { kind: 'control', host: normalizeAddress(peer) }
  if (advertised === null) return [control]
  const adv: DataCandidate = { kind: 'advertised', host: normalizeAddress(advertised) }
  return adv.host === control.host ? [adv] : [adv, control]
}

/** Dials one candidate and, when it answers, lists the directory over that connection. */
async function probe(control: FtpControl, candidate: DataCandidate, port: number, options: DiagnoseOptions): Promise<Probe> {
  const started = performance.now()
  let socket: Socket
  try {
    // From the control connection's local address, as the proxy does: vsftpd refuses a data
    // connection from another IP than the control connection's (pasv_promiscuous=NO).
    socket = await connectTo(candidate.host, port, control.localAddress, options.timeoutMs)
  } catch (err) {
    return { ...candidate, port, ok: false, error: connectErrorText(err), ms: since(started) }
  }
  const ms = since(started)
  return { ...candidate, port, ok: true, ms, listing: await list(control, socket, options) }
}

/** LIST over a connected data socket: a 1xx, then both the data EOF and the final 226/250. */
async function list(control: FtpControl, data: Socket, options: DiagnoseOptions): Promise<Listing> {
  const started = performance.now()
  const received = readToEnd(data, options.timeoutMs)
  const failed = (reply: Reply | null, error: string): Listing => {
    data.destroy()
    return { ok: false, bytes: 0, lines: 0, reply: reply === null ? null : replyText(reply), ms: since(started), error }
  }
  let first: Reply
  try {
    first = await control.command(options.path === null ? 'LIST' : `LIST ${options.path}`)
  } catch (err) {
    return failed(null, messageOf(err))
  }
  if (first.code === null || first.code >= 200) return failed(first, 'LIST was refused')
  let final: Reply
  try {
    final = await control.read()
  } catch (err) {
    return failed(null, messageOf(err))
  }
  const got = await received
  const ok = got.error === undefined && (final.code === 226 || final.code === 250)
  const listing = { ok, bytes: got.bytes, lines: got.lines, reply: replyText(final), ms: since(started) }
  if (got.error !== undefined) return { ...listing, error: `data connection: ${got.error}` }
  return ok ? listing : { ...listing, error: 'LIST did not complete' }
}

interface Received {
  bytes: number
  lines: number
  error?: string
}

/** Counts what arrives until EOF; only counts are kept, so a huge listing costs no memory. */
function readToEnd(socket: Socket, timeoutMs: number): Promise<Received> {
  return new Promise((resolve) => {
    const got: Received = { bytes: 0, lines: 0 }
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no data for ${timeoutMs} ms`)))
    socket.on('data', (chunk: Buffer) => {
      got.bytes += chunk.length
      for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) got.lines++
    })
    socket.on('end', () => socket.destroy())
    // error only records why; close settles (STYLE.md 4).
    socket.on('error', (err: NodeJS.ErrnoException) => {
      got.error ??= err.code ?? err.message
    })
    socket.on('close', () => {
      if (!socket.readableEnded) got.error ??= 'closed before EOF'
      resolve(got)
    })
  })
}

/** A connect failure as its Node error code (ECONNREFUSED, ETIMEDOUT, ...). */
function connectErrorText(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? messageOf(err)
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** Milliseconds since `started`, to 0.1 ms. */
function since(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10
}
