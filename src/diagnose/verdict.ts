// The verdict: a pure function of the findings (no sockets, no clock), so every case is
// table-tested. Judged as DESIGN.md puts it: a private advertised address is not the fault by
// itself (DEVFTP's 10.100.20.222 works); the fault is an advertised address that differs from the
// address the client reached the server at and that the client cannot reach (PRODFTP).

import { formatEndpoint } from '../net/endpoint.js'
import type { AddressClass } from '../net/address-policy.js'
import { PASSIVE_RANGE_SETTINGS } from '../server-settings.js'
import type { ExitCode, Fault, Findings, PassiveFindings, Probe, Verdict } from './report.js'

// Where the proxy listens in the suggested command: every interface, the default port. The
// operator then points clients (DNS, or the address they dial) at this machine.
const PROXY_LISTEN = '0.0.0.0:2121'

/**
 * Where common servers set the address they put in a 227, given the address clients reach
 * (`a`): `fix` is a fix-list line of its own, `short` goes into a sentence. Each checked against
 * the server's documentation: vsftpd.conf(5); ProFTPD's MasqueradeAddress; pure-ftpd(8);
 * pyftpdlib's FTPHandler (and `python3 -m pyftpdlib --help`); FileZilla Server's "Passive mode"
 * settings page; IIS's "FTP Firewall Support" feature page (firewallSupport element).
 * `greeting` recognises the server in its default 220, so its own line comes first.
 */
const ADDRESS_SETTINGS: ReadonlyArray<{ greeting: RegExp; fix: (a: string) => string; short: (a: string) => string }> = [
  { greeting: /vsftpd/i, fix: (a) => `vsftpd: pasv_address=${a} and pasv_addr_resolve=NO`, short: (a) => `vsftpd pasv_address=${a}` },
  { greeting: /proftpd/i, fix: (a) => `ProFTPD: MasqueradeAddress ${a}`, short: (a) => `ProFTPD MasqueradeAddress ${a}` },
  { greeting: /pure-ftpd/i, fix: (a) => `pure-ftpd: -P ${a}`, short: (a) => `pure-ftpd -P ${a}` },
  {
    greeting: /pyftpdlib/i,
    fix: (a) => `pyftpdlib: FTPHandler.masquerade_address = '${a}' (python3 -m pyftpdlib: -n ${a})`,
    short: (a) => `pyftpdlib masquerade_address ${a}`,
  },
  {
    greeting: /filezilla/i,
    fix: (a) => `FileZilla Server: Protocol settings > FTP and FTP over TLS (FTPS) > Passive mode, "Use the following host": ${a}`,
    short: (a) => `FileZilla Server "Use the following host" ${a}`,
  },
  {
    greeting: /microsoft ftp/i,
    fix: (a) => `IIS FTP: the site's FTP Firewall Support, "External IP Address of Firewall": ${a} (firewallSupport externalIp4Address)`,
    short: (a) => `IIS "External IP Address of Firewall" ${a}`,
  },
]

/** ADDRESS_SETTINGS, the server the greeting names first (a greeting can be changed: none is dropped). */
function addressSettings(greeting: string | null): typeof ADDRESS_SETTINGS {
  const named = ADDRESS_SETTINGS.filter((s) => greeting !== null && s.greeting.test(greeting))
  return [...named, ...ADDRESS_SETTINGS.filter((s) => !named.includes(s))]
}

export function judge(f: Findings): { verdict: Verdict; exitCode: ExitCode } {
  const target = formatEndpoint(f.target)
  if (!f.control.ok) {
    const why = errorWords(f.control.error ?? 'failed')
    return conclude(2, {
      fault: 'no_control_connection',
      advertises: [],
      reachable: [`${target} (control): not reachable, ${why}`],
      cause: `No control connection to ${target}: ${why}.`,
      fix: ['check the host and port in the URL, that the FTP server runs there, and that no firewall blocks the control port'],
      notes: [],
    })
  }
  if (!f.login.ok) {
    const said = f.login.reply === null ? `no reply (${f.login.error ?? 'none'})` : quote(f.login.reply)
    const greeted = f.control.greeting !== null && /^220/.test(f.control.greeting)
    return conclude(2, {
      fault: 'login_failed',
      advertises: [],
      reachable: [`${target} (control): reachable in ${f.control.ms} ms`],
      cause: greeted
        ? `The server did not accept the login as "${f.login.user}": ${said}. Passive mode cannot be checked without a login.`
        : `The server did not open a session: ${said}. Passive mode cannot be checked.`,
      fix: ['give a user and password the server accepts: ftp://user:password@host:port (without them, anonymous is tried)'],
      notes: [],
    })
  }
  const peer = f.control.peer ?? f.target.host
  const pasv = assess(f.pasv, peer, target, f.control.greeting)
  const epsv = assess(f.epsv, peer, target, f.control.greeting)
  const advertises = [describeReply(f.pasv, peer), describeReply(f.epsv, peer)]
  const reachable = [...f.pasv.probes.map((p) => describeProbe('PASV', p)), ...f.epsv.probes.map((p) => describeProbe('EPSV', p))]
  const notes = notesFor(f, peer, pasv, epsv)

  const fault = pasv.kind === 'broken' ? pasv : epsv.kind === 'broken' ? epsv : null
  if (fault !== null) {
    // Both broken: the other one's cause goes into the notes.
    const other = fault === pasv && epsv.kind === 'broken' ? [`EPSV fails too. ${epsv.cause}`] : []
    return conclude(1, { fault: fault.fault, advertises, reachable, cause: fault.cause, fix: fault.fix, notes: [...notes, ...other] })
  }
  if (pasv.kind === 'absent' && epsv.kind === 'absent') {
    return conclude(1, {
      fault: 'no_passive_mode',
      advertises,
      reachable,
      cause: 'The server refuses both PASV and EPSV: no client behind NAT or a firewall (the usual case) can open a data connection.',
      fix: ['enable passive mode in the server (vsftpd pasv_enable=YES; remove any rule that denies PASV and EPSV, such as a ProFTPD <Limit PASV EPSV>)'],
      notes,
    })
  }
  const works = [pasv, epsv].flatMap((a) => (a.kind === 'works' ? [a.summary] : []))
  return conclude(0, { fault: null, advertises, reachable, cause: `Passive mode works: ${works.join('; ')}.`, fix: [], notes })
}

function conclude(exitCode: ExitCode, v: Omit<Verdict, 'healthy'>): { verdict: Verdict; exitCode: ExitCode } {
  return { verdict: { healthy: exitCode === 0, ...v }, exitCode }
}

type Assessment =
  | { kind: 'works'; summary: string }
  | { kind: 'absent' }
  | { kind: 'broken'; fault: Fault; cause: string; fix: string[] }

/** One mode: does the address a client dials answer, and does a listing over it work? */
function assess(m: PassiveFindings, peer: string, target: string, greeting: string | null): Assessment {
  switch (m.status) {
    case 'not_sent':
    case 'refused':
      return { kind: 'absent' }
    case 'bad_reply':
      return {
        kind: 'broken',
        fault: 'bad_passive_reply',
        cause: `The server's reply to ${m.command} cannot be parsed (${m.error ?? 'invalid'}): ${quote(m.reply ?? '')}. No client can use it.`,
        fix: [
          "check the server's passive-mode settings and version: a 227 must name h1,h2,h3,h4,p1,p2, every value 0-255 and the port not 0 (RFC 959); a 229 must name (|||port|) (RFC 2428)",
        ],
      }
    case 'no_reply':
      return {
        kind: 'broken',
        fault: 'no_passive_reply',
        cause: `The server sent no reply to ${m.command} (${m.error ?? 'none'}): it dropped or stalled the session when asked for a passive port.`,
        fix: [`check the server's log for what happened on ${m.command}`],
      }
    case 'ok':
      return assessOk(m, peer, target, greeting)
  }
}

function assessOk(m: PassiveFindings, peer: string, target: string, greeting: string | null): Assessment {
  const settings = addressSettings(greeting)
  const host = m.advertised?.host ?? null
  // What a client honouring the reply dials: the 227's host, or for a 229 the control peer.
  const dialled = m.probes.find((p) => p.kind === (host === null ? 'control' : 'advertised'))
  const viaControl = m.probes.find((p) => p.kind === 'control')
  if (dialled === undefined) {
    // gatherFindings always probes what a client dials; reaching this is a bug there.
    throw new Error(`no probe of the address a client dials for ${m.command}`)
  }
  if (dialled.ok) {
    if (dialled.listing?.ok === true) return { kind: 'works', summary: `${m.command} to ${at(dialled)} answers and LIST over it works` }
    return listingFailed(m.command, dialled)
  }
  const why = errorWords(dialled.error ?? 'failed')
  const range = `open the server's passive port range to clients in every firewall, and forward it in NAT (${PASSIVE_RANGE_SETTINGS} set the range)`
  if (host === null || m.matchesControl === true) {
    return {
      kind: 'broken',
      fault: m.command === 'EPSV' ? 'epsv_port_unreachable' : 'data_port_unreachable',
      cause: `The server's ${m.command} reply names port ${dialled.port} at ${dialled.host}, the address this connection reached it at, and that port is not reachable from here (${why}): a firewall or NAT between here and the server blocks the passive port range, or the server's data listener is not there.`,
      fix: [range],
    }
  }
  const cls = m.class === 'unspecified' ? 'the unspecified address, which names no host' : `${classWords(m.class)} address`
  if (viaControl?.ok === true && viaControl.listing?.ok === true) {
    return {
      kind: 'broken',
      fault: 'advertised_unreachable',
      cause:
        `The server advertises ${host} in its 227 reply, ${cls} that differs from the address this connection reached it at (${peer}), ` +
        `and ${host} is not reachable from here (${why}), while ${peer} answers at the data port and a listing over it works. ` +
        'The server puts an address in the 227 that only its own network can reach (an internal address behind NAT, or a wrong setting), ' +
        'so clients that honour the 227 (wget; curl --no-ftp-skip-pasv-ip; python ftplib with trust_server_pasv_ipv4_address) cannot open a data connection.',
      fix: [
        ...settings.map((s) => s.fix(peer)),
        `or, without touching the server, put ftp-pasv-proxy in front of it and point clients at the proxy: ftp-pasv-proxy --upstream ${target} --upstream-data-address control --listen ${PROXY_LISTEN}`,
      ],
    }
  }
  return {
    kind: 'broken',
    fault: 'data_port_unreachable',
    cause:
      `The server advertises ${host} in its 227 reply, ${cls} that differs from the address this connection reached it at (${peer}); ` +
      `${host} is not reachable from here (${why}), and ${peer} does not serve the data port either (${viaControl === undefined ? 'not tried' : probeOutcome(viaControl)}).`,
    fix: [
      `set the address clients reach in the server (${settings.map((s) => s.short(peer)).join(', ')}) and ${range}`,
      `or run ftp-pasv-proxy where ${host} is reachable (inside the server's network) and point clients at it: ftp-pasv-proxy --upstream ${target} --upstream-data-address advertised --listen ${PROXY_LISTEN}`,
    ],
  }
}

function listingFailed(command: string, p: Probe): Assessment {
  const last = p.listing?.reply === null || p.listing?.reply === undefined ? '' : `; last reply: ${quote(p.listing.reply)}`
  return {
    kind: 'broken',
    fault: 'listing_failed',
    cause: `The ${command} data connection to ${at(p)} opens, but a listing over it fails (${p.listing?.error ?? 'not tried'}${last}).`,
    fix: [
      "check the server's log for why LIST failed; vsftpd's 425 \"Security: Bad IP connecting\" means the data connection came from another address than the control connection (NAT in between; vsftpd pasv_promiscuous)",
    ],
  }
}

function notesFor(f: Findings, peer: string, pasv: Assessment, epsv: Assessment): string[] {
  const notes: string[] = []
  const host = f.pasv.advertised?.host ?? null
  if (pasv.kind === 'works' && host !== null && f.pasv.matchesControl === false) {
    notes.push(
      `The 227 names ${host}, ${classWords(f.pasv.class)} address that differs from the control address ${peer}, but it is reachable from here, ` +
        'so it is not a fault. Clients on other networks may not reach it; run diagnose from there to be sure.',
    )
    const control = f.pasv.probes.find((p) => p.kind === 'control')
    if (control !== undefined && !(control.ok && control.listing?.ok === true)) {
      notes.push(
        `The control address ${peer} does not serve the 227's data port (${probeOutcome(control)}): clients that ignore the 227 address and dial the control address instead (curl and python ftplib do by default) fail in PASV mode.`,
      )
    }
  }
  if (pasv.kind === 'broken' && epsv.kind === 'works') {
    notes.push('EPSV works: clients that use EPSV (curl by default) are not affected; clients that use PASV and honour its address are.')
  }
  for (const m of [f.pasv, f.epsv]) {
    if (m.status === 'refused') {
      const fallback = m.command === 'EPSV' ? 'clients fall back to PASV' : 'clients that only use PASV cannot transfer'
      notes.push(`${m.command} is refused (${quote(m.reply ?? '')}): ${fallback}.`)
    }
    const expected = m.command === 'PASV' ? 227 : 229
    if (m.status === 'ok' && m.code !== expected) {
      notes.push(`${m.command} was answered with ${m.code ?? '?'}: curl, python ftplib and basic-ftp reject a ${m.code ?? '?'} after ${m.command}; ftp-pasv-proxy answers each client in the form it asked for.`)
    }
  }
  return notes
}

function describeReply(m: PassiveFindings, peer: string): string {
  switch (m.status) {
    case 'not_sent':
      return `${m.command}: not sent`
    case 'refused':
      return `${m.command}: refused: ${quote(m.reply ?? '')}`
    case 'bad_reply':
      return `${m.command}: a reply that cannot be parsed: ${quote(m.reply ?? '')}`
    case 'no_reply':
      return `${m.command}: no reply (${m.error ?? 'none'})`
    case 'ok': {
      const port = m.advertised?.port ?? 0
      const host = m.advertised?.host ?? null
      if (host === null) return `${m.command}: ${m.code ?? '?'} names port ${port}, to be dialled at the control address ${peer} (RFC 2428)`
      const relation = m.matchesControl === true ? 'the control address itself' : `differs from the control address ${peer}`
      return `${m.command}: ${m.code ?? '?'} names ${formatEndpoint({ host, port })}, ${classWords(m.class)} address, ${relation}`
    }
  }
}

function describeProbe(command: string, p: Probe): string {
  return `${command} ${p.kind} ${at(p)}: ${probeOutcome(p)}`
}

function probeOutcome(p: Probe): string {
  if (!p.ok) return `not reachable, ${errorWords(p.error ?? 'failed')}`
  const l = p.listing
  if (l === undefined) return `reachable in ${p.ms} ms`
  if (!l.ok) return `reachable in ${p.ms} ms, but LIST failed: ${l.error ?? 'failed'}`
  return `reachable in ${p.ms} ms, LIST works (${count(l.lines, 'line')}, ${count(l.bytes, 'byte')})`
}

/** `1 line`, `3 lines`. */
export function count(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`
}

function at(p: Probe): string {
  return formatEndpoint({ host: p.host, port: p.port })
}

/** An address class with its article, for sentences. */
function classWords(cls: AddressClass | null): string {
  switch (cls) {
    case 'private':
    case 'public':
    case 'loopback':
      return `a ${cls}`
    case 'unspecified':
      return 'the unspecified'
    case 'link_local':
      return 'a link-local'
    case 'carrier_grade_nat':
      return 'a carrier-grade NAT'
    case 'other':
    case null:
      return 'a special-purpose'
  }
}

/** A Node error code in words, the code kept for searching. */
function errorWords(error: string): string {
  const words: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ETIMEDOUT: 'no answer within the timeout',
    EHOSTUNREACH: 'no route to host',
    ENETUNREACH: 'network unreachable',
    ENOTFOUND: 'host name not found',
    ECONNRESET: 'connection reset',
  }
  const w = words[error]
  return w === undefined ? error : `${w}, ${error}`
}

function quote(reply: string): string {
  return `"${reply.replaceAll('\n', ' / ')}"`
}
