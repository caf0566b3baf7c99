// diagnose against real vsftpd 3.0.3: one advertising 127.0.0.99 (nothing listens there), as
// PRODFTP advertises an address its clients cannot reach, and one configured correctly.
// Ports: controls 23100 and 23101, passive ranges 23110-23119 and 23120-23129.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import type { DiagnoseReport } from '../../src/diagnose/report.js'
import { startVsftpd, type FtpServer } from '../e2e/lib/servers.js'
import { diagnose, undocumented } from './fixtures/helpers.js'

t.setTimeout(90_000)

async function serve(opts: Parameters<typeof startVsftpd>[0]): Promise<FtpServer> {
  const server = await startVsftpd(opts)
  t.teardown(() => server.stop())
  // With the upload/ directory vsftpd's root holds, the listing is three lines.
  await writeFile(join(server.root, 'a.txt'), 'alpha\n')
  await writeFile(join(server.root, 'b.txt'), 'beta\n')
  return server
}

// The two servers the tests below dial by port: 23100 advertises 127.0.0.99, 23101 its own address.
await serve({ port: 23100, pasvMin: 23110, pasvMax: 23119, pasvAddress: '127.0.0.99' })
await serve({ port: 23101, pasvMin: 23120, pasvMax: 23129 })
const inRange = (min: number, max: number) => (port: unknown) => typeof port === 'number' && port >= min && port <= max

t.test('pasv_address=127.0.0.99: exit 1, names the address, says it is not reachable, names the fix', async (t) => {
  const r = await diagnose('ftp://127.0.0.1:23100')
  t.equal(r.code, 1)
  t.equal(r.stderr, '')
  t.match(r.stdout, /^Verdict: passive-mode fault: advertised_unreachable, exit 1$/m)
  t.match(r.stdout, /^ {2}- PASV: 227 names 127\.0\.0\.99:231[1]\d, a loopback address, differs from the control address 127\.0\.0\.1$/m)
  t.match(r.stdout, /^ {2}- PASV advertised 127\.0\.0\.99:231[1]\d: not reachable, connection refused, ECONNREFUSED$/m)
  t.match(r.stdout, /^Root cause: The server advertises 127\.0\.0\.99 in its 227 reply.*127\.0\.0\.99 is not reachable from here/m)
  t.match(r.stdout, /^ {2}- vsftpd: pasv_address=127\.0\.0\.1 and pasv_addr_resolve=NO$/m)
  t.match(r.stdout, /^ {2}- ProFTPD: MasqueradeAddress 127\.0\.0\.1$/m)
  t.match(r.stdout, /^ {2}- pure-ftpd: -P 127\.0\.0\.1$/m)
  t.match(r.stdout, /ftp-pasv-proxy --upstream 127\.0\.0\.1:23100 --upstream-data-address control --listen 0\.0\.0\.0:2121$/m)
})

t.test('correctly configured vsftpd: exit 0', async (t) => {
  const r = await diagnose('ftp://127.0.0.1:23101')
  t.equal(r.code, 0)
  t.equal(r.stderr, '')
  t.match(r.stdout, /^Verdict: healthy, exit 0$/m)
  t.match(r.stdout, /^Root cause: Passive mode works: PASV to 127\.0\.0\.1:231[2]\d answers and LIST over it works; EPSV to 127\.0\.0\.1:231[2]\d answers and LIST over it works\.$/m)
  t.notMatch(r.stdout, /^Fix/m)
  t.notMatch(r.stdout, /^Notes/m)
})

t.test('--json, field by field, against the vsftpd that advertises 127.0.0.99', async (t) => {
  const r = await diagnose('ftp://127.0.0.1:23100', '--json')
  t.equal(r.code, 1)
  t.equal(r.stderr, '')
  const report = JSON.parse(r.stdout) as DiagnoseReport
  t.same(Object.keys(report), ['target', 'control', 'login', 'pasv', 'epsv', 'verdict', 'exitCode'])
  t.same(report.target, { host: '127.0.0.1', port: 23100 })
  t.same(Object.keys(report.control).sort(), ['greeting', 'ms', 'ok', 'peer'])
  t.equal(report.control.ok, true)
  t.equal(report.control.peer, '127.0.0.1')
  t.type(report.control.ms, 'number')
  t.match(report.control.greeting, /^220 /)
  t.same(report.login, { user: 'anonymous', ok: true, reply: '230 Login successful.' })

  const pasv = report.pasv
  t.same(Object.keys(pasv).sort(), ['advertised', 'class', 'code', 'command', 'matchesControl', 'probes', 'reply', 'status'])
  t.equal(pasv.command, 'PASV')
  t.equal(pasv.status, 'ok')
  t.equal(pasv.code, 227)
  const port = pasv.advertised?.port ?? 0
  t.equal(pasv.reply, `227 Entering Passive Mode (127,0,0,99,${port >> 8},${port & 255}).`)
  t.equal(pasv.advertised?.host, '127.0.0.99')
  t.ok(inRange(23110, 23119)(port), `advertised port ${port} in vsftpd's range`)
  t.equal(pasv.class, 'loopback')
  t.equal(pasv.matchesControl, false)
  t.equal(pasv.probes.length, 2)
  const [advertised, control] = pasv.probes
  t.same(Object.keys(advertised ?? {}).sort(), ['error', 'host', 'kind', 'ms', 'ok', 'port'])
  t.match(advertised, { kind: 'advertised', host: '127.0.0.99', port, ok: false, error: 'ECONNREFUSED' })
  t.same(Object.keys(control ?? {}).sort(), ['host', 'kind', 'listing', 'ms', 'ok', 'port'])
  t.match(control, { kind: 'control', host: '127.0.0.1', ok: true })
  // vsftpd picks a random free port of its range for each PASV: the fresh one may equal the first.
  t.ok(inRange(23110, 23119)(control?.port), 'a fresh PASV port for the control probe')
  const listing = control?.listing
  t.same(Object.keys(listing ?? {}).sort(), ['bytes', 'lines', 'ms', 'ok', 'reply'])
  t.match(listing, { ok: true, lines: 3, reply: '226 Directory send OK.' })
  t.ok((listing?.bytes ?? 0) > 0, 'bytes counted')

  const epsv = report.epsv
  t.match(epsv, { command: 'EPSV', status: 'ok', code: 229, class: null, matchesControl: null })
  t.equal(epsv.advertised?.host, null)
  t.equal(epsv.reply, `229 Entering Extended Passive Mode (|||${epsv.advertised?.port}|)`)
  t.equal(epsv.probes.length, 1)
  t.match(epsv.probes[0], { kind: 'control', host: '127.0.0.1', port: epsv.advertised?.port, ok: true })
  t.same(epsv.probes[0]?.listing?.bytes, listing?.bytes, 'the same listing over EPSV')

  const v = report.verdict
  t.same(Object.keys(v), ['healthy', 'fault', 'advertises', 'reachable', 'cause', 'fix', 'notes'])
  t.equal(v.healthy, false)
  t.equal(v.fault, 'advertised_unreachable')
  t.same(v.advertises, [
    `PASV: 227 names 127.0.0.99:${port}, a loopback address, differs from the control address 127.0.0.1`,
    `EPSV: 229 names port ${epsv.advertised?.port}, to be dialled at the control address 127.0.0.1 (RFC 2428)`,
  ])
  t.equal(v.reachable.length, 3)
  t.equal(v.reachable[0], `PASV advertised 127.0.0.99:${port}: not reachable, connection refused, ECONNREFUSED`)
  t.match(v.cause, /127\.0\.0\.99 is not reachable from here/)
  t.same(v.fix, [
    'vsftpd: pasv_address=127.0.0.1 and pasv_addr_resolve=NO',
    'ProFTPD: MasqueradeAddress 127.0.0.1',
    'pure-ftpd: -P 127.0.0.1',
    "pyftpdlib: FTPHandler.masquerade_address = '127.0.0.1' (python3 -m pyftpdlib: -n 127.0.0.1)",
    'FileZilla Server: Protocol settings > FTP and FTP over TLS (FTPS) > Passive mode, "Use the following host": 127.0.0.1',
    'IIS FTP: the site\'s FTP Firewall Support, "External IP Address of Firewall": 127.0.0.1 (firewallSupport externalIp4Address)',
    'or, without touching the server, put ftp-pasv-proxy in front of it and point clients at the proxy: ftp-pasv-proxy --upstream 127.0.0.1:23100 --upstream-data-address control --listen 0.0.0.0:2121',
  ])
  t.same(v.notes, ['EPSV works: clients that use EPSV (curl by default) are not affected; clients that use PASV and honour its address are.'])
  t.equal(report.exitCode, 1)
  t.same(await undocumented(report), [], 'docs/diagnose.md names every field')
})

t.test('--json against the correct vsftpd: one probe, the control address itself', async (t) => {
  const r = await diagnose('--json', 'ftp://127.0.0.1:23101', '--timeout', '2s')
  t.equal(r.code, 0)
  const report = JSON.parse(r.stdout) as DiagnoseReport
  t.match(report.pasv, { status: 'ok', class: 'loopback', matchesControl: true, advertised: { host: '127.0.0.1' } })
  t.equal(report.pasv.probes.length, 1)
  t.match(report.pasv.probes[0], { kind: 'advertised', host: '127.0.0.1', port: report.pasv.advertised?.port, ok: true, listing: { ok: true, lines: 3 } })
  t.match(report.verdict, { healthy: true, fault: null, fix: [], notes: [] })
  t.equal(report.exitCode, 0)
})
