// runDiagnose end to end against the scriptable server double (src/demo/ftp-server.ts) and
// small scripted control ports: a 227 address that differs from the control address but is
// reachable (exit 0, noted), usage errors and a server that is not listening (exit 2), and the
// network paths of the other findings. Ports: 23102-23109, 23130-23139 and 23199 (nothing
// listens there); the double's data listeners take ephemeral ports (it binds them on port 0).
import t from 'tap'
import { startFtpServer, type FtpServerOptions } from '../../src/demo/ftp-server.js'
import type { DiagnoseReport } from '../../src/diagnose/report.js'
import { diagnose, startForwarder, startScripted, undocumented } from './fixtures/helpers.js'

t.setTimeout(60_000)

const FILES = {
  'readme.txt': Buffer.from('hello\n'),
  'reports/daily.csv': Buffer.from('a,b\n1,2\n'),
  'reports/weekly.csv': Buffer.from('c\n'),
  'reports/old/2019.csv': Buffer.from('x\n'),
}

async function double(options: FtpServerOptions): Promise<{ url: string; commands: string[] }> {
  const server = await startFtpServer({ files: FILES, ...options })
  t.teardown(() => server.close())
  return { url: `ftp://127.0.0.1:${server.port}`, commands: server.commands }
}

function report(stdout: string): DiagnoseReport {
  return JSON.parse(stdout) as DiagnoseReport
}

t.test('usage errors exit 2 with the reason and the usage on stderr, nothing on stdout', async (t) => {
  const table: Array<[string[], RegExp]> = [
    [[], /^ftp-pasv-proxy diagnose: no URL given\nusage: ftp-pasv-proxy diagnose ftp:\/\/\[user\[:password\]@\]host\[:port\]\[\/dir\] \[--password-env VAR\] \[--json\] \[--timeout 10s\]\n$/],
    [['not a url'], /^ftp-pasv-proxy diagnose: "not a url" is not a URL/],
    [['http://127.0.0.1:23199'], /must start with ftp:\/\//],
    [['ftp://127.0.0.1:23199', '--jsno'], /Unknown option '--jsno'/],
  ]
  for (const [argv, re] of table) {
    const r = await diagnose(...argv)
    t.equal(r.code, 2, argv.join(' '))
    t.equal(r.stdout, '', 'nothing on stdout')
    t.match(r.stderr, re)
  }
})

t.test('a server that is not listening: exit 2, said clearly', async (t) => {
  const r = await diagnose('ftp://127.0.0.1:23199')
  t.equal(r.code, 2)
  t.equal(r.stderr, 'ftp-pasv-proxy diagnose: No control connection to 127.0.0.1:23199: connection refused, ECONNREFUSED.\n')
  t.match(r.stdout, /^ {2}control {2}cannot connect: ECONNREFUSED$/m)
  t.match(r.stdout, /^Verdict: not diagnosed: no_control_connection, exit 2$/m)
  const j = await diagnose('ftp://127.0.0.1:23199', '--json')
  t.equal(j.code, 2)
  const rep = report(j.stdout)
  t.match(rep, {
    target: { host: '127.0.0.1', port: 23199 },
    control: { ok: false, peer: null, greeting: null, error: 'ECONNREFUSED' },
    login: { user: 'anonymous', ok: false, reply: null },
    pasv: { status: 'not_sent', probes: [] },
    epsv: { status: 'not_sent', probes: [] },
    verdict: { healthy: false, fault: 'no_control_connection' },
    exitCode: 2,
  })
  t.same(await undocumented(rep), [], 'docs/diagnose.md names every field')
})

/** A double on 127.0.0.2:`port`, reached through a forwarder on 127.0.0.1:`listen`. */
async function behindForwarder(listen: number, port: number, options: FtpServerOptions): Promise<string[]> {
  const d = await double({ host: '127.0.0.2', port, ...options })
  const fwd = await startForwarder({ host: '127.0.0.1', port: listen }, { host: '127.0.0.2', port }, '127.0.0.1')
  t.teardown(() => fwd.close())
  return d.commands
}

t.test("227 names the server's own address, not the one dialled, and it answers: exit 0, noted", async (t) => {
  // The double listens on 127.0.0.2 and advertises that; diagnose reaches it through a
  // forwarder on 127.0.0.1, so the control peer is 127.0.0.1 and the 227 names 127.0.0.2, which
  // is reachable: DEVFTP's picture. (The double binds its data listeners to the control
  // connection's local address; the forwarder is how it gets a different one.) EPSV is refused
  // here, as the forwarder carries only the control port: see the next test.
  const commands = await behindForwarder(23102, 23103, { epsvReply: 'unsupported' })
  const url = 'ftp://alice:s%3Acr%40t@127.0.0.1:23102/reports'
  const r = await diagnose(url)
  t.equal(r.code, 0)
  t.equal(r.stderr, '')
  t.match(r.stdout, /^Diagnosing 127\.0\.0\.1:23102 as alice$/m)
  t.match(r.stdout, /^Verdict: healthy, exit 0$/m)
  t.match(r.stdout, /^Root cause: Passive mode works: PASV to 127\.0\.0\.2:\d+ answers and LIST over it works\.$/m)
  t.match(r.stdout, /^ {2}- The 227 names 127\.0\.0\.2, a loopback address that differs from the control address 127\.0\.0\.1, but it is reachable from here, so it is not a fault\./m)
  t.match(r.stdout, /^ {2}- The control address 127\.0\.0\.1 does not serve the 227's data port \(not reachable, connection refused, ECONNREFUSED\)/m)
  t.match(r.stdout, /^ {2}- EPSV is refused \("500 'EPSV': command not understood\."\): clients fall back to PASV\.$/m)
  t.ok(commands.includes('USER alice') && commands.includes('PASS s:cr@t'), 'user and password sent URL-decoded')
  t.ok(commands.includes('LIST reports'), 'the URL path is the directory listed')

  const j = await diagnose(url, '--json')
  t.equal(j.code, 0)
  const rep = report(j.stdout)
  t.match(rep.login, { user: 'alice', ok: true })
  t.match(rep.pasv, { status: 'ok', class: 'loopback', matchesControl: false, advertised: { host: '127.0.0.2' } })
  t.match(rep.pasv.probes, [
    { kind: 'advertised', host: '127.0.0.2', ok: true, listing: { ok: true, lines: 3, reply: '226 Transfer complete.' } },
    { kind: 'control', host: '127.0.0.1', ok: false, error: 'ECONNREFUSED' },
  ])
  t.equal(rep.pasv.probes[1]?.listing, undefined, 'no listing over a path that did not answer')
  t.match(rep.epsv, { status: 'refused', code: 500, advertised: null, probes: [] })
  t.match(rep.verdict, { healthy: true, fault: null, fix: [] })
  t.equal(rep.verdict.notes.length, 3)
  t.equal(rep.exitCode, 0)
  for (const out of [r.stdout, r.stderr, j.stdout, j.stderr]) {
    t.notMatch(out, /s:cr@t|s%3Acr%40t/, 'the password is printed nowhere')
  }
})

t.test('the same path with EPSV offered: its port does not answer at the control address', async (t) => {
  await behindForwarder(23106, 23107, {})
  const j = await diagnose('ftp://127.0.0.1:23106', '--json')
  t.equal(j.code, 1)
  const rep = report(j.stdout)
  t.match(rep.pasv.probes, [{ kind: 'advertised', ok: true, listing: { ok: true } }, { kind: 'control', ok: false }])
  t.match(rep.epsv.probes, [{ kind: 'control', host: '127.0.0.1', port: rep.epsv.advertised?.port, ok: false, error: 'ECONNREFUSED' }])
  t.match(rep.verdict, { healthy: false, fault: 'epsv_port_unreachable' })
  t.match(rep.verdict.notes[0], /^The 227 names 127\.0\.0\.2/)
})

t.test('each finding over the network, as the verdict names it', async (t) => {
  const cases: Array<{ name: string; port: number; options: FtpServerOptions; path?: string; exit: number; fault: string; check?: (r: DiagnoseReport) => void }> = [
    {
      name: 'a 227 with an octet over 255',
      port: 23130,
      options: { pasvReply: () => '227 Entering Passive Mode (999,0,0,1,4,1).' },
      exit: 1,
      fault: 'bad_passive_reply',
      check: (r) => t.match(r.pasv, { status: 'bad_reply', code: 227, error: /value over 255/, probes: [] }),
    },
    {
      name: 'a data port where nothing listens',
      port: 23131,
      options: { dataListen: 'never' },
      exit: 1,
      fault: 'data_port_unreachable',
      check: (r) => t.match(r.pasv.probes, [{ kind: 'advertised', host: '127.0.0.1', ok: false, error: 'ECONNREFUSED' }]),
    },
    {
      name: 'a 227 naming 0.0.0.0 is not dialled',
      port: 23132,
      options: { advertiseAddress: '0.0.0.0' },
      exit: 1,
      fault: 'advertised_unreachable',
      check: (r) => {
        t.match(r.pasv, { class: 'unspecified', matchesControl: false })
        t.match(r.pasv.probes, [
          { kind: 'advertised', host: '0.0.0.0', ok: false, ms: 0, error: 'not dialled: the unspecified address names no host' },
          { kind: 'control', host: '127.0.0.1', ok: true, listing: { ok: true } },
        ])
      },
    },
    {
      name: 'the fresh PASV for the second probe is refused',
      port: 23133,
      options: (() => {
        let n = 0
        const first = (real: { port: number }): string => `227 Entering Passive Mode (127,0,0,99,${real.port >> 8},${real.port & 255}).`
        return { pasvReply: (real) => (n++ === 0 ? first(real) : '425 Cannot open passive connection.') }
      })(),
      exit: 1,
      fault: 'data_port_unreachable',
      check: (r) =>
        t.match(r.pasv.probes, [
          { kind: 'advertised', host: '127.0.0.99', ok: false },
          { kind: 'control', ok: false, error: 'a fresh PASV for this probe failed: 425 Cannot open passive connection.' },
        ]),
    },
    {
      name: 'LIST of a directory that does not exist',
      port: 23134,
      options: {},
      path: '/nowhere',
      exit: 1,
      fault: 'listing_failed',
      check: (r) =>
        t.match(r.pasv.probes, [{ ok: true, listing: { ok: false, bytes: 0, reply: '550 No such file or directory.', error: 'LIST was refused' } }]),
    },
  ]
  for (const c of cases) {
    const d = await double({ port: c.port, ...c.options })
    const r = await diagnose(`${d.url}${c.path ?? ''}`, '--json')
    t.equal(r.code, c.exit, `${c.name}: exit`)
    const rep = report(r.stdout)
    t.equal(rep.verdict.fault, c.fault, `${c.name}: fault`)
    c.check?.(rep)
  }
})

t.test('a server that accepts but never greets: exit 2 after the timeout', async (t) => {
  const silent = await startScripted(23104, null, () => {})
  t.teardown(() => silent.close())
  const r = await diagnose('ftp://127.0.0.1:23104', '--json', '--timeout', '300ms')
  t.equal(r.code, 2)
  t.match(report(r.stdout), {
    control: { ok: true, peer: '127.0.0.1', greeting: null },
    login: { ok: false, reply: null, error: 'no reply within 300 ms' },
    verdict: { fault: 'login_failed' },
  })
  t.match(r.stderr, /did not open a session: no reply \(no reply within 300 ms\)/)
})

t.test('login refused, or the session turned away: exit 2', async (t) => {
  const refusing = await startScripted(23105, '220 hi', (line, s) => {
    s.write(line.startsWith('USER') ? '331 Password?\r\n' : line.startsWith('PASS') ? '530 Login incorrect.\r\n' : '221 Bye.\r\n')
  })
  t.teardown(() => refusing.close())
  const busy = await startScripted(23108, '421 Too many users, try later.', () => {})
  t.teardown(() => busy.close())
  const r = await diagnose('ftp://bob:hunter2@127.0.0.1:23105')
  t.equal(r.code, 2)
  t.match(r.stdout, /^ {2}login {4}530 Login incorrect\.$/m)
  t.match(r.stderr, /did not accept the login as "bob": "530 Login incorrect\."/)
  t.notMatch(r.stdout + r.stderr, /hunter2/)
  const b = await diagnose('ftp://127.0.0.1:23108')
  t.equal(b.code, 2)
  t.match(b.stderr, /did not open a session: "421 Too many users, try later\."/)
})

t.test('the server drops the session on PASV', async (t) => {
  const dropping = await startScripted(23109, '220 hi', (line, s) => {
    if (line === 'PASV') s.destroy()
    else s.write('230 Welcome.\r\n')
  })
  t.teardown(() => dropping.close())
  const r = await diagnose('ftp://127.0.0.1:23109', '--json')
  t.equal(r.code, 1)
  const rep = report(r.stdout)
  t.match(rep.pasv, { status: 'no_reply', reply: null, error: 'the server closed the control connection' })
  t.match(rep.epsv, { status: 'no_reply', error: 'the server closed the control connection' })
  t.equal(rep.verdict.fault, 'no_passive_reply')
})
