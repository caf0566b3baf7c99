// The command policy as a table: every verb the session treats specially, in each state that
// changes the answer (before the greeting is like any open state: the policy does not look at
// it; after EPSV ALL; with a lease pending; while the session is ending).
import t from 'tap'
import { parseCommand } from '../../src/protocol/commands.js'
import { decideCommand, type CommandState } from '../../src/proxy/command-policy.js'

const OPEN: CommandState = {
  ending: false,
  epsvAll: false,
  serverWithoutEpsv: false,
  leasePending: false,
  activeMode: 'passive',
  clientAddress: '127.0.0.1',
  serverFamily: 4,
  clientTls: 'off',
  clientSecure: false,
}
// FTPS toward the client: offered (before and after AUTH TLS), and required.
const TLS_OFFERED: CommandState = { ...OPEN, clientTls: 'optional' }
const TLS_ON: CommandState = { ...TLS_OFFERED, clientSecure: true }
const TLS_REQUIRED: CommandState = { ...OPEN, clientTls: 'required' }
const TLS_REQUIRED_ON: CommandState = { ...TLS_REQUIRED, clientSecure: true }
const EPSV_ALL: CommandState = { ...OPEN, epsvAll: true }
const PENDING: CommandState = { ...OPEN, leasePending: true }
const ENDING: CommandState = { ...OPEN, ending: true }
const NO_EPSV: CommandState = { ...OPEN, serverWithoutEpsv: true }
const V6: CommandState = { ...OPEN, serverFamily: 6, clientAddress: '::1' }
const RELAY: CommandState = { ...OPEN, activeMode: 'relay' }
const DENY: CommandState = { ...OPEN, activeMode: 'deny' }

const cmd = (line: string): { verb: string; arg: string } => parseCommand(Buffer.from(`${line}\r\n`, 'latin1'))

type Row = readonly [state: string, s: CommandState, line: string, expected: object, set?: object]

const rows: Row[] = [
  // Passed on as they came; USER and QUIT teach the session something.
  ['open', OPEN, 'USER anonymous', { type: 'forward', reply: 'plain' }, { user: 'anonymous' }],
  ['open', OPEN, 'PASS secret', { type: 'forward', reply: 'plain' }],
  ['open', OPEN, 'QUIT', { type: 'forward', reply: 'plain' }, { quit: true }],
  ['open', OPEN, 'NOOP', { type: 'forward', reply: 'plain' }],
  ['open', OPEN, 'FEAT', { type: 'forward', reply: 'feat' }],
  ['open', OPEN, 'ABOR', { type: 'abort', send: 'ABOR\r\n' }],
  ['pending', PENDING, 'ABOR', { type: 'abort', send: 'ABOR\r\n' }],
  // FTPS with the client side on (RFC 4217): AUTH upgrades; PBSZ and PROT are the proxy's to answer.
  ['tls offered', TLS_OFFERED, 'AUTH TLS', { type: 'auth' }],
  ['tls offered', TLS_OFFERED, 'AUTH SSL', { type: 'auth' }],
  ['tls offered', TLS_OFFERED, 'AUTH tls-c', { type: 'auth' }],
  ['tls offered', TLS_OFFERED, 'AUTH GSSAPI', { type: 'refuse', reason: 'unsupported', text: /^504 AUTH mechanism not supported/ }],
  ['tls offered', TLS_OFFERED, 'AUTH', { type: 'refuse', reason: 'unsupported', text: /^504 AUTH needs a mechanism/ }],
  ['tls offered', TLS_OFFERED, 'PBSZ 0', { type: 'reply', text: /^503 PBSZ needs AUTH TLS first/ }],
  ['tls offered', TLS_OFFERED, 'PROT P', { type: 'reply', text: /^503 PROT needs AUTH TLS first/ }],
  ['tls offered', TLS_OFFERED, 'USER anonymous', { type: 'forward', reply: 'plain' }, { user: 'anonymous' }],
  ['tls on', TLS_ON, 'AUTH TLS', { type: 'reply', text: /^503 TLS is already on/ }],
  ['tls on', TLS_ON, 'PBSZ 0', { type: 'reply', text: '200 PBSZ=0' }],
  ['tls on', TLS_ON, 'PROT P', { type: 'reply', text: '200 Protection level set to P.' }, { prot: 'P' }],
  ['tls on', TLS_ON, 'prot c', { type: 'reply', text: '200 Protection level set to C.' }, { prot: 'C' }],
  ['tls on', TLS_ON, 'PROT S', { type: 'reply', text: /^536 / }],
  ['tls on', TLS_ON, 'PROT X', { type: 'refuse', reason: 'malformed', text: /^504 PROT takes C or P/ }],
  ['tls on', TLS_ON, 'RETR f', { type: 'forward', reply: 'plain' }],
  ['tls on', TLS_ON, 'CCC', { type: 'refuse', reason: 'tls', text: /^534 CCC is refused/ }],
  ['open', OPEN, 'CCC', { type: 'refuse', reason: 'tls', text: /^534 / }],
  ['tls on', TLS_ON, 'REIN', { type: 'refuse', reason: 'tls', text: /^502 REIN/ }],
  ['tls offered', TLS_OFFERED, 'REIN', { type: 'forward', reply: 'plain' }],
  // --client-tls required: nothing reaches the server before AUTH TLS, USER included.
  ['tls required', TLS_REQUIRED, 'USER anonymous', { type: 'refuse', reason: 'tls_required', text: /^530 / }],
  ['tls required', TLS_REQUIRED, 'PASS secret', { type: 'refuse', reason: 'tls_required', text: /^530 / }],
  ['tls required', TLS_REQUIRED, 'PASV', { type: 'refuse', reason: 'tls_required', text: /^530 / }],
  ['tls required', TLS_REQUIRED, 'AUTH TLS', { type: 'auth' }],
  ['tls required', TLS_REQUIRED, 'FEAT', { type: 'forward', reply: 'feat' }],
  ['tls required', TLS_REQUIRED, 'QUIT', { type: 'forward', reply: 'plain' }, { quit: true }],
  ['tls required, on', TLS_REQUIRED_ON, 'USER anonymous', { type: 'forward', reply: 'plain' }, { user: 'anonymous' }],
  ['tls required, ending', { ...TLS_REQUIRED, ending: true }, 'AUTH TLS', { type: 'drop' }],
  // --client-tls off: TLS is not carried, answered at once.
  ['open', OPEN, 'AUTH TLS', { type: 'refuse', reason: 'tls', text: /^502 AUTH / }],
  ['open', OPEN, 'AUTH SSL', { type: 'refuse', reason: 'tls', text: /^502 AUTH / }],
  ['open', OPEN, 'PBSZ 0', { type: 'refuse', reason: 'tls', text: /^502 PBSZ / }],
  ['open', OPEN, 'PROT P', { type: 'refuse', reason: 'tls', text: /^502 PROT / }],
  ['open', OPEN, 'LPSV', { type: 'refuse', reason: 'unsupported', text: /^502 LPSV / }],
  ['open', OPEN, 'LPRT 4,4,127,0,0,1,2,4,1', { type: 'refuse', reason: 'unsupported', text: /^502 LPRT / }],
  // Passive requests.
  ['open', OPEN, 'PASV', { type: 'passive', form: 227, send: null, active: null }],
  ['epsv all', EPSV_ALL, 'PASV', { type: 'refuse', reason: 'epsv_all', text: /^503 PASV refused/ }],
  ['open', OPEN, 'EPSV', { type: 'passive', form: 229, send: 'EPSV\r\n', active: null }],
  ['open', OPEN, 'EPSV 2', { type: 'passive', form: 229, send: 'EPSV\r\n', active: null }],
  ['no epsv', NO_EPSV, 'EPSV', { type: 'passive', form: 229, send: 'PASV\r\n', active: null }],
  ['epsv all', EPSV_ALL, 'EPSV', { type: 'passive', form: 229, send: 'EPSV\r\n', active: null }],
  ['open', OPEN, 'EPSV ALL', { type: 'reply', text: '200 EPSV ALL command successful.' }, { epsvAll: true }],
  ['open', OPEN, 'epsv all', { type: 'reply', text: '200 EPSV ALL command successful.' }, { epsvAll: true }],
  // Active requests: the client's own address, a port from 1024 (RFC 2577).
  ['open', OPEN, 'PORT 127,0,0,1,20,0', { type: 'passive', form: 'active', send: 'PASV\r\n', active: { host: '127.0.0.1', port: 5120 } }],
  ['no epsv', NO_EPSV, 'PORT 127,0,0,1,20,0', { type: 'passive', form: 'active', send: 'PASV\r\n' }],
  ['v6 server', V6, 'EPRT |2|::1|5120|', { type: 'passive', form: 'active', send: 'EPSV\r\n', active: { host: '::1', port: 5120 } }],
  ['open', OPEN, 'EPRT |1|127.0.0.1|5120|', { type: 'passive', form: 'active', active: { host: '127.0.0.1', port: 5120 } }],
  // The address is dialled normalised, as it was checked; `::` means the client itself.
  ['open', OPEN, 'EPRT |2|::ffff:127.0.0.1|5120|', { type: 'passive', form: 'active', active: { host: '127.0.0.1', port: 5120 } }],
  ['v6 server', V6, 'EPRT |2|0:0:0:0:0:0:0:1|5120|', { type: 'passive', active: { host: '::1', port: 5120 } }],
  ['v6 server', V6, 'EPRT |2|::|5120|', { type: 'passive', active: { host: '::1', port: 5120 } }],
  ['open', OPEN, 'PORT 127,0,0,2,20,0', { type: 'refuse', reason: 'bounce', text: /^504 PORT refused/ }],
  ['open', OPEN, 'PORT 127,0,0,1,0,21', { type: 'refuse', reason: 'bounce', text: /^504 PORT refused/ }],
  ['open', OPEN, 'EPRT |1|10.0.0.1|5120|', { type: 'refuse', reason: 'bounce', text: /^504 EPRT refused/ }],
  ['open', OPEN, 'PORT 999,0,0,1,20,0', { type: 'refuse', reason: 'malformed', text: '501 Syntax error in PORT parameters.' }],
  ['open', OPEN, 'EPRT |3|x|1|', { type: 'refuse', reason: 'malformed', text: '501 Syntax error in EPRT parameters.' }],
  ['epsv all', EPSV_ALL, 'PORT 127,0,0,1,20,0', { type: 'refuse', reason: 'epsv_all', text: /^503 PORT refused/ }],
  ['epsv all', EPSV_ALL, 'EPRT |1|127.0.0.1|5120|', { type: 'refuse', reason: 'epsv_all', text: /^503 EPRT refused/ }],
  ['relay', RELAY, 'PORT 127,0,0,1,20,0', { type: 'relay', active: { host: '127.0.0.1', port: 5120 } }],
  ['relay', RELAY, 'PORT 127,0,0,2,20,0', { type: 'refuse', reason: 'bounce' }],
  ['deny', DENY, 'PORT 127,0,0,1,20,0', { type: 'refuse', reason: 'unsupported', text: /^502 Active mode is disabled/ }],
  // Transfer verbs use the pending lease; without one they are passed on (the server answers).
  ...(['RETR f', 'STOR f', 'STOU', 'APPE f', 'LIST', 'NLST', 'MLSD'] as const).flatMap((line): Row[] => [
    ['pending', PENDING, line, { type: 'transfer' }],
    ['open', OPEN, line, { type: 'forward', reply: 'plain' }],
  ]),
  // While the session ends, nothing is acted on.
  ...(['USER a', 'QUIT', 'ABOR', 'PASV', 'EPSV ALL', 'PORT 127,0,0,1,20,0', 'AUTH TLS', 'RETR f', 'LPSV'] as const).map(
    (line): Row => ['ending', ENDING, line, { type: 'drop' }],
  ),
]

for (const [name, state, line, expected, set] of rows) {
  t.test(`${name}: ${line}`, async (t) => {
    const d = decideCommand(state, cmd(line))
    t.match(d.action, expected)
    if (set === undefined) t.equal(d.set, undefined, 'the session learns nothing')
    else t.same(d.set, set)
  })
}

t.test('every verb the session treats specially is in the table, in each state that matters', async (t) => {
  const verbs = new Set(rows.map(([, , line]) => cmd(line).verb))
  for (const v of ['USER', 'PASS', 'QUIT', 'ABOR', 'PASV', 'EPSV', 'PORT', 'EPRT', 'LPSV', 'LPRT', 'AUTH', 'PBSZ', 'PROT', 'FEAT', 'RETR', 'STOR', 'STOU', 'APPE', 'LIST', 'NLST', 'MLSD']) {
    t.ok(verbs.has(v), v)
  }
  const states = new Set(rows.map(([name]) => name))
  for (const s of ['open', 'epsv all', 'pending', 'ending']) t.ok(states.has(s), s)
})
