// The verdict as a pure function: findings in, exit code and plain words out, no sockets.
// Addresses are the story's (DESIGN.md): PRODFTP advertises 172.16.40.222, unreachable; DEVFTP
// advertises 10.100.20.222, private too but reachable.
import t from 'tap'
import type { AddressClass } from '../../src/net/address-policy.js'
import type { Findings, PassiveFindings, Probe } from '../../src/diagnose/report.js'
import { judge } from '../../src/diagnose/verdict.js'

const PEER = '192.168.100.10'
const TARGET = { host: 'ftp.example', port: 21 }

type Outcome = 'listed' | 'refused' | 'timeout' | 'list_failed'

function probe(kind: 'advertised' | 'control', host: string, port: number, outcome: Outcome): Probe {
  switch (outcome) {
    case 'refused':
      return { kind, host, port, ok: false, error: 'ECONNREFUSED', ms: 0.3 }
    case 'timeout':
      return { kind, host, port, ok: false, error: 'ETIMEDOUT', ms: 3000 }
    case 'listed':
      return { kind, host, port, ok: true, ms: 0.4, listing: { ok: true, bytes: 190, lines: 3, reply: '226 Directory send OK.', ms: 2 } }
    case 'list_failed':
      return {
        kind,
        host,
        port,
        ok: true,
        ms: 0.4,
        listing: { ok: false, bytes: 0, lines: 0, reply: '425 Security: Bad IP connecting.', ms: 1, error: 'LIST was refused' },
      }
  }
}

function pasv(host: string, cls: AddressClass, adv: Outcome | null, ctl: Outcome | null, code = 227): PassiveFindings {
  const probes = [
    ...(adv === null ? [] : [probe('advertised', host, 23200, adv)]),
    ...(ctl === null ? [] : [probe('control', PEER, 23201, ctl)]),
  ]
  return {
    command: 'PASV',
    status: 'ok',
    reply: `${code} Entering Passive Mode (${host.replaceAll('.', ',')},90,160).`,
    code,
    advertised: { host, port: 23200 },
    class: cls,
    matchesControl: host === PEER,
    probes,
  }
}

function epsv(outcome: Outcome): PassiveFindings {
  return {
    command: 'EPSV',
    status: 'ok',
    reply: '229 Entering Extended Passive Mode (|||23202|)',
    code: 229,
    advertised: { host: null, port: 23202 },
    class: null,
    matchesControl: null,
    probes: [probe('control', PEER, 23202, outcome)],
  }
}

function refused(command: 'PASV' | 'EPSV'): PassiveFindings {
  const reply = `500 '${command}': command not understood.`
  return { command, status: 'refused', reply, code: 500, advertised: null, class: null, matchesControl: null, probes: [] }
}

function notSent(command: 'PASV' | 'EPSV'): PassiveFindings {
  return { command, status: 'not_sent', reply: null, code: null, advertised: null, class: null, matchesControl: null, probes: [] }
}

function findings(p: PassiveFindings, e: PassiveFindings, over: Partial<Findings> = {}): Findings {
  return {
    target: TARGET,
    control: { ok: true, peer: PEER, ms: 1, greeting: '220 (vsFTPd 3.0.3)' },
    login: { user: 'anonymous', ok: true, reply: '230 Login successful.' },
    pasv: p,
    epsv: e,
    ...over,
  }
}

interface Row {
  name: string
  f: Findings
  exit: 0 | 1 | 2
  fault: string | null
  cause?: RegExp[]
  fix?: RegExp[]
  /** Each note must match its pattern, in order; no other notes. */
  notes?: RegExp[]
  reachable?: RegExp[]
  advertises?: RegExp[]
}

const PRODFTP = '172.16.40.222'
const DEVFTP = '10.100.20.222'
const PROXY = /^or, without touching the server, put ftp-pasv-proxy in front of it and point clients at the proxy: ftp-pasv-proxy --upstream ftp\.example:21 --upstream-data-address control --listen 0\.0\.0\.0:2121$/

const rows: Row[] = [
  {
    name: 'PRODFTP: private advertised address refused, control peer answers',
    f: findings(pasv(PRODFTP, 'private', 'refused', 'listed'), epsv('listed')),
    exit: 1,
    fault: 'advertised_unreachable',
    cause: [/advertises 172\.16\.40\.222 in its 227 reply, a private address that differs from the address this connection reached it at \(192\.168\.100\.10\)/, /172\.16\.40\.222 is not reachable from here \(connection refused, ECONNREFUSED\)/],
    fix: [
      /^vsftpd: pasv_address=192\.168\.100\.10 and pasv_addr_resolve=NO$/,
      /^ProFTPD: MasqueradeAddress 192\.168\.100\.10$/,
      /^pure-ftpd: -P 192\.168\.100\.10$/,
      /^pyftpdlib: FTPHandler\.masquerade_address = '192\.168\.100\.10' \(python3 -m pyftpdlib: -n 192\.168\.100\.10\)$/,
      /^FileZilla Server: Protocol settings > FTP and FTP over TLS \(FTPS\) > Passive mode, "Use the following host": 192\.168\.100\.10$/,
      /^IIS FTP: the site's FTP Firewall Support, "External IP Address of Firewall": 192\.168\.100\.10 \(firewallSupport externalIp4Address\)$/,
      PROXY,
    ],
    notes: [/^EPSV works/],
    advertises: [/^PASV: 227 names 172\.16\.40\.222:23200, a private address, differs from the control address 192\.168\.100\.10$/, /^EPSV: 229 names port 23202, to be dialled at the control address 192\.168\.100\.10/],
    reachable: [/^PASV advertised 172\.16\.40\.222:23200: not reachable, connection refused/, /^PASV control 192\.168\.100\.10:23201: reachable in 0\.4 ms, LIST works \(3 lines, 190 bytes\)$/, /^EPSV control/],
  },
  {
    name: 'PRODFTP seen through a firewall that drops: the timeout is named',
    f: findings(pasv(PRODFTP, 'private', 'timeout', 'listed'), epsv('listed')),
    exit: 1,
    fault: 'advertised_unreachable',
    cause: [/no answer within the timeout, ETIMEDOUT/],
  },
  {
    name: 'advertised 0.0.0.0, control peer answers',
    f: findings(pasv('0.0.0.0', 'unspecified', 'refused', 'listed'), epsv('listed')),
    exit: 1,
    fault: 'advertised_unreachable',
    cause: [/0\.0\.0\.0 in its 227 reply, the unspecified address, which names no host/],
    advertises: [/the unspecified address/, /^EPSV/],
  },
  {
    name: 'DEVFTP: private advertised address, differs, reachable: healthy with a note',
    f: findings(pasv(DEVFTP, 'private', 'listed', 'listed'), epsv('listed')),
    exit: 0,
    fault: null,
    cause: [/^Passive mode works: PASV to 10\.100\.20\.222:23200 answers and LIST over it works; EPSV to 192\.168\.100\.10:23202 answers/],
    fix: [],
    notes: [/^The 227 names 10\.100\.20\.222, a private address that differs from the control address 192\.168\.100\.10, but it is reachable from here/],
  },
  {
    name: 'differs and reachable, the control address does not serve the port: curl note',
    f: findings(pasv('100.64.1.2', 'carrier_grade_nat', 'listed', 'refused'), epsv('listed')),
    exit: 0,
    fault: null,
    notes: [/a carrier-grade NAT address/, /^The control address 192\.168\.100\.10 does not serve the 227's data port \(not reachable, connection refused, ECONNREFUSED\): clients that ignore the 227 address .*curl/],
  },
  {
    name: 'the control address itself, reachable: healthy, no notes',
    f: findings(pasv(PEER, 'private', 'listed', null), epsv('listed')),
    exit: 0,
    fault: null,
    notes: [],
    advertises: [/a private address, the control address itself$/, /^EPSV/],
  },
  {
    name: 'the control address itself, port refused: firewall on the passive range',
    f: findings(pasv(PEER, 'private', 'refused', null), epsv('listed')),
    exit: 1,
    fault: 'data_port_unreachable',
    cause: [/names port 23200 at 192\.168\.100\.10, the address this connection reached it at, and that port is not reachable from here/],
    fix: [/passive port range .*vsftpd pasv_min_port\/pasv_max_port, ProFTPD PassivePorts, pure-ftpd -p/],
  },
  {
    name: 'differs, and neither address serves the data port',
    f: findings(pasv('169.254.7.7', 'link_local', 'timeout', 'refused'), epsv('refused')),
    exit: 1,
    fault: 'data_port_unreachable',
    cause: [/169\.254\.7\.7 in its 227 reply, a link-local address/, /192\.168\.100\.10 does not serve the data port either \(not reachable, connection refused/],
    fix: [
      /^set the address clients reach in the server \(vsftpd pasv_address=192\.168\.100\.10, ProFTPD MasqueradeAddress 192\.168\.100\.10, pure-ftpd -P 192\.168\.100\.10, pyftpdlib masquerade_address 192\.168\.100\.10, FileZilla Server "Use the following host" 192\.168\.100\.10, IIS "External IP Address of Firewall" 192\.168\.100\.10\) and open/,
      /ftp-pasv-proxy --upstream ftp\.example:21 --upstream-data-address advertised --listen 0\.0\.0\.0:2121$/],
    notes: [/^EPSV fails too\. The server's EPSV reply names port 23202/],
  },
  {
    name: 'the data connection opens but LIST is refused',
    f: findings(pasv(PEER, 'public', 'list_failed', null), epsv('listed')),
    exit: 1,
    fault: 'listing_failed',
    cause: [/The PASV data connection to 192\.168\.100\.10:23200 opens, but a listing over it fails \(LIST was refused; last reply: "425 Security: Bad IP connecting\."\)/],
    fix: [/pasv_promiscuous/],
    reachable: [/reachable in 0\.4 ms, but LIST failed: LIST was refused$/, /^EPSV/],
  },
  {
    name: 'a 227 with an octet over 255',
    f: findings(
      { ...notSent('PASV'), status: 'bad_reply', reply: '227 (999,0,0,1,4,1)', code: 227, error: 'bad passive reply: 227 tuple 999,0,0,1,4,1 has a value over 255' },
      epsv('listed'),
    ),
    exit: 1,
    fault: 'bad_passive_reply',
    cause: [/PASV cannot be parsed \(bad passive reply: 227 tuple 999,0,0,1,4,1 has a value over 255\): "227 \(999,0,0,1,4,1\)"/],
    advertises: [/^PASV: a reply that cannot be parsed: "227 \(999,0,0,1,4,1\)"$/, /^EPSV/],
  },
  {
    name: 'the server drops the session on PASV',
    f: findings({ ...notSent('PASV'), status: 'no_reply', error: 'the server closed the control connection' }, notSent('EPSV')),
    exit: 1,
    fault: 'no_passive_reply',
    cause: [/no reply to PASV \(the server closed the control connection\)/],
    advertises: [/^PASV: no reply \(the server closed the control connection\)$/, /^EPSV: not sent$/],
  },
  {
    name: 'PASV refused, EPSV works (an IPv6-only setup): healthy with a note',
    f: findings(refused('PASV'), epsv('listed')),
    exit: 0,
    fault: null,
    notes: [/^PASV is refused \("500 'PASV': command not understood\."\): clients that only use PASV cannot transfer\.$/],
    advertises: [/^PASV: refused: "500/, /^EPSV/],
  },
  {
    name: 'EPSV refused, PASV works: healthy with a note',
    f: findings(pasv(PEER, 'private', 'listed', null), refused('EPSV')),
    exit: 0,
    fault: null,
    notes: [/^EPSV is refused .*clients fall back to PASV\.$/],
  },
  {
    name: 'both refused',
    f: findings(refused('PASV'), refused('EPSV')),
    exit: 1,
    fault: 'no_passive_mode',
    fix: [/pasv_enable=YES/],
  },
  {
    name: 'PASV works, the EPSV port does not answer at the control address',
    f: findings(pasv(DEVFTP, 'private', 'listed', 'listed'), epsv('timeout')),
    exit: 1,
    fault: 'epsv_port_unreachable',
    cause: [/EPSV reply names port 23202 at 192\.168\.100\.10, the address this connection reached it at, and that port is not reachable from here \(no answer within the timeout, ETIMEDOUT\)/],
  },
  {
    name: 'PASV answered with a 229: works, but clients reject the form',
    f: findings(
      {
        ...epsv('listed'),
        command: 'PASV',
        reply: '229 Entering Extended Passive Mode (|||23202|)',
      },
      epsv('listed'),
    ),
    exit: 0,
    fault: null,
    notes: [/^PASV was answered with 229: curl, python ftplib and basic-ftp reject a 229 after PASV/],
  },
  {
    name: 'PASV works, EPSV LIST fails',
    f: findings(pasv(PEER, 'public', 'listed', null), epsv('list_failed')),
    exit: 1,
    fault: 'listing_failed',
    cause: [/^The EPSV data connection/],
  },
  {
    name: 'no control connection',
    f: findings(notSent('PASV'), notSent('EPSV'), {
      control: { ok: false, peer: null, ms: 0.5, greeting: null, error: 'ECONNREFUSED' },
      login: { user: 'anonymous', ok: false, reply: null },
    }),
    exit: 2,
    fault: 'no_control_connection',
    cause: [/^No control connection to ftp\.example:21: connection refused, ECONNREFUSED\.$/],
    reachable: [/^ftp\.example:21 \(control\): not reachable/],
  },
  {
    name: 'an unknown host name',
    f: findings(notSent('PASV'), notSent('EPSV'), {
      control: { ok: false, peer: null, ms: 0.5, greeting: null, error: 'ENOTFOUND' },
    }),
    exit: 2,
    fault: 'no_control_connection',
    cause: [/host name not found, ENOTFOUND/],
  },
  {
    name: 'a connect error without a Node code is shown as is',
    f: findings(notSent('PASV'), notSent('EPSV'), { control: { ok: false, peer: null, ms: 0.5, greeting: null, error: 'EWHATEVER' } }),
    exit: 2,
    fault: 'no_control_connection',
    cause: [/: EWHATEVER\.$/],
  },
  {
    name: 'login refused',
    f: findings(notSent('PASV'), notSent('EPSV'), { login: { user: 'alice', ok: false, reply: '530 Login incorrect.' } }),
    exit: 2,
    fault: 'login_failed',
    cause: [/did not accept the login as "alice": "530 Login incorrect\."/],
    fix: [/ftp:\/\/user:password@host:port/],
  },
  {
    name: 'no greeting within the timeout',
    f: findings(notSent('PASV'), notSent('EPSV'), {
      control: { ok: true, peer: PEER, ms: 1, greeting: null },
      login: { user: 'anonymous', ok: false, reply: null, error: 'no reply within 3000 ms' },
    }),
    exit: 2,
    fault: 'login_failed',
    cause: [/did not open a session: no reply \(no reply within 3000 ms\)/],
  },
  {
    name: 'the server turns the session away',
    f: findings(notSent('PASV'), notSent('EPSV'), {
      control: { ok: true, peer: PEER, ms: 1, greeting: '421 Too many users.' },
      login: { user: 'anonymous', ok: false, reply: '421 Too many users.' },
    }),
    exit: 2,
    fault: 'login_failed',
    cause: [/did not open a session: "421 Too many users\."/],
  },
]

for (const row of rows) {
  t.test(row.name, async (t) => {
    const { verdict, exitCode } = judge(row.f)
    t.equal(exitCode, row.exit, 'exit code')
    t.equal(verdict.healthy, row.exit === 0, 'healthy is exit 0')
    t.equal(verdict.fault, row.fault, 'fault')
    for (const re of row.cause ?? []) t.match(verdict.cause, re, `cause ${re}`)
    if (row.fix !== undefined) {
      t.equal(verdict.fix.length, row.fix.length, 'one fix per pattern')
      row.fix.forEach((re, i) => t.match(verdict.fix[i], re, `fix ${i}`))
    }
    if (row.exit !== 0) t.not(verdict.fix.length, 0, 'a fault names a fix')
    else t.same(verdict.fix, [], 'nothing to fix')
    for (const [name, want] of [
      ['notes', row.notes],
      ['reachable', row.reachable],
      ['advertises', row.advertises],
    ] as const) {
      if (want === undefined) continue
      t.equal(verdict[name].length, want.length, `${name}: ${JSON.stringify(verdict[name])}`)
      want.forEach((re, i) => t.match(verdict[name][i], re, `${name} ${i}`))
    }
  })
}

t.test('the server its greeting names comes first in the fix list; the others stay', async (t) => {
  const table: Array<[string, RegExp]> = [
    ['220 pyftpdlib 1.5.7 ready.', /^pyftpdlib: /],
    ['220-FileZilla Server 1.8.0\n220 Please visit https://filezilla-project.org/', /^FileZilla Server: /],
    ['220 Microsoft FTP Service', /^IIS FTP: /],
    ['220 ProFTPD Server (Debian) [127.0.0.1]', /^ProFTPD: /],
    ['220---------- Welcome to Pure-FTPd [privsep] ----------\n220 You will be disconnected after 15 minutes of inactivity.', /^pure-ftpd: /],
    ['220 (vsFTPd 3.0.3)', /^vsftpd: /],
    ['220 Welcome', /^vsftpd: /],
  ]
  for (const [greeting, first] of table) {
    const f = findings(pasv(PRODFTP, 'private', 'refused', 'listed'), epsv('listed'), { control: { ok: true, peer: PEER, ms: 1, greeting } })
    const { verdict } = judge(f)
    t.match(verdict.fix[0], first, greeting)
    t.equal(verdict.fix.length, 7, 'six servers and the proxy')
  }
})

t.test('an IPv6 target is bracketed in every address it prints', async (t) => {
  const v6 = '2001:db8::21'
  const e = { ...epsv('refused'), probes: [{ ...probe('control', v6, 23202, 'refused') }] }
  const { verdict, exitCode } = judge(findings(refused('PASV'), e, { target: { host: v6, port: 21 }, control: { ok: true, peer: v6, ms: 1, greeting: '220 ok' } }))
  t.equal(exitCode, 1)
  t.equal(verdict.fault, 'epsv_port_unreachable')
  t.match(verdict.reachable[0], /^EPSV control \[2001:db8::21\]:23202: not reachable/)
})

t.test('a special-purpose address class reads as such', async (t) => {
  const { verdict } = judge(findings(pasv('240.0.0.1', 'other', 'listed', 'listed'), epsv('listed')))
  t.match(verdict.notes[0], /240\.0\.0\.1, a special-purpose address/)
  const pub = judge(findings(pasv('8.8.8.8', 'public', 'refused', 'listed'), epsv('listed'))).verdict
  t.match(pub.cause, /8\.8\.8\.8 in its 227 reply, a public address/)
})

t.test('findings without a probe of the address a client dials are a bug in the gatherer', async (t) => {
  t.throws(() => judge(findings(pasv(DEVFTP, 'private', null, 'listed'), epsv('listed'))), /no probe of the address a client dials for PASV/)
})
