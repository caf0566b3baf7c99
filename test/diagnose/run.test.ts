// runDiagnose end to end against the scriptable server double (src/demo/ftp-server.ts) and
// small scripted control ports: a 227 address that differs from the control address but is
// reachable (exit 0, noted), usage errors and a server that is not listening (exit 2), and the
// network paths of the other findings. Ports: 23102-23109 and 23199 (nothing listens there).
import t from 'tap'
import { startFtpServer, type FtpServerOptions } from '../../src/demo/ftp-server.js'
import type { DiagnoseReport } from '../../src/diagnose/report.js'
import { diagnose, startForwarder, startScripted, undocumented } from './lib.js'

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
    [[], /^ftp-pasv-proxy diagnose: no URL given\nusage: ftp-pasv-proxy diagnose ftp:\/\/\[user\[:password\]@\]host\[:port\]\[\/dir\] \[--json\] \[--timeout 3s\]\n$/],
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
