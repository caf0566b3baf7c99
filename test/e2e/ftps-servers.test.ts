// FTPS through the proxy in front of ProFTPD 1.3.8 (mod_tls) and pure-ftpd 1.0.50, each
// requiring TLS on control and data (ProFTPD TLSRequired on, with mod_tls's default that a data
// connection resumes the control connection's TLS session; pure-ftpd -Y 3) and each advertising
// 127.0.0.99, where nothing of it listens (MasqueradeAddress, -P). Direct, a client that honours
// the 227 fails; through the proxy (its own certificate toward the client, the server's checked
// against the test CA with --upstream-ca), curl --ssl-reqd and python ftplib FTP_TLS with PROT P
// move 16 MiB each way with equal sha256, and ProFTPD's data connections resume the proxy's
// session (it refuses any that does not, checked directly). ProFTPD runs twice: with TLS 1.3 (session tickets) and
// limited to TLS 1.2 (session ids), the two ways the proxy resumes its session on data connections.
// Ports: 29750-29849. Control 29750-29752; server passive ranges 29760-29779, 29780-29799,
// 29800-29829; the proxies' pools 29830-29836, 29837-29843, 29844-29849.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import t, { type Test } from 'tap'
import { makeCertificates } from '../fixtures/certs.js'
import { metricValue, startProxy, type TestProxy } from '../fixtures/proxy.js'
import { curlDownload, curlUpload, ftplibDownload, ftplibUpload, ftpUrl, type FtpLogin } from './lib/clients.js'
import { makeRandomFile, sha256File, startProftpd, startPureFtpd, type FtpServer, type ServerTls } from './lib/servers.js'

t.setTimeout(300_000)
const MiB = 1024 * 1024
const WRONG = '127.0.0.99'
// The servers' virtual user (servers.ts): uploads are owned by nobody.
const NOBODY_UID = 65534

const tmp = await mkdtemp(join(tmpdir(), 'ftps-servers-e2e-'))
t.teardown(() => rm(tmp, { recursive: true, force: true }))
const certs = makeCertificates(tmp)
const serverTls: ServerTls = { cert: certs.cert, key: certs.key, required: true }
const curlTls = ['--ssl-reqd', '--cacert', certs.caCert]

interface ServerCase {
  readonly name: string
  readonly start: () => Promise<FtpServer>
  /** The proxy's --passive-ports. */
  readonly pool: string
  /** The server's refusal of a login in clear. */
  readonly clearRefused: RegExp
  /** The server's refusal of data in clear (PROT C). */
  readonly clearDataRefused: RegExp
  /** The TLS version between the proxy and the server. */
  readonly version: 'TLSv1.2' | 'TLSv1.3'
  /** Whether the server refuses a protected data connection that does not resume the control connection's TLS session. */
  readonly requiresReuse: boolean
  /** Of the six data legs toward the server, how many resume the proxy's control session. */
  readonly resumed: number
}

const PROFTPD = {
  clearRefused: /550 SSL\/TLS required on the control channel/,
  // At the PROT C itself.
  clearDataRefused: /534 Unwilling to accept security parameters/,
  // mod_tls's default: a data connection that does not resume is refused ("TLSOptions
  // NoSessionReuseRequired" would allow it). All six resume, or the transfers would fail.
  requiresReuse: true,
  resumed: 6,
} as const

const cases: readonly ServerCase[] = [
  {
    name: 'ProFTPD 1.3.8 with mod_tls, TLSRequired on, MasqueradeAddress 127.0.0.99',
    start: () => startProftpd({ port: 29750, pasvMin: 29760, pasvMax: 29779, masqueradeAddress: WRONG, tls: serverTls }),
    pool: '29830-29836',
    version: 'TLSv1.3',
    ...PROFTPD,
  },
  {
    name: 'ProFTPD 1.3.8 as above with TLSProtocol TLSv1.2',
    start: () => startProftpd({ port: 29751, pasvMin: 29780, pasvMax: 29799, masqueradeAddress: WRONG, tls: { ...serverTls, protocols: 'TLSv1.2' } }),
    pool: '29837-29843',
    version: 'TLSv1.2',
    ...PROFTPD,
  },
  {
    name: 'pure-ftpd 1.0.50 with -Y 3, -P 127.0.0.99',
    start: () => startPureFtpd({ port: 29752, pasvMin: 29800, pasvMax: 29829, forcedPassiveIp: WRONG, tls: serverTls }),
    pool: '29844-29849',
    clearRefused: /421-Sorry, cleartext sessions and weak ciphers are not accepted/,
    // PROT C is accepted; the RETR after it is not.
    clearDataRefused: /521 Data connection cannot be opened with this PROT setting/,
    version: 'TLSv1.3',
    // pure-ftpd issues no TLS 1.3 session tickets (SSL_CTX_set_num_tickets 0) and does not ask for
    // resumption: each data leg is a full handshake.
    requiresReuse: false,
    resumed: 0,
  },
]

const handshakes = (p: TestProxy, side: string, channel: string, result: string): Promise<number> =>
  metricValue(p, 'ftp_proxy_tls_handshakes_total', { side, channel, result })

for (const c of cases) {
  t.test(c.name, async (t) => {
    const server = await c.start()
    t.teardown(() => server.stop())
    const big = await makeRandomFile(server.root, 'big.bin', 16 * MiB)
    const proxy = await startProxy(['--upstream', `${server.host}:${server.port}`, '--passive-ports', c.pool, '--tls-cert', certs.cert, '--tls-key', certs.key, '--upstream-ca', certs.caCert], 'info')
    t.teardown(() => proxy.close())
    const login = (p: { host: string; port: number }): FtpLogin => ({ host: p.host, port: p.port, user: server.user, password: server.password })
    const out = (name: string): string => join(tmp, `${server.kind}-${name}`)

    /** The STORed file on the server's disk: the same bytes, the virtual user's, readable by the server's other sessions. */
    const checkStored = async (t: Test, remote: string): Promise<void> => {
      const path = join(server.root, remote)
      t.equal(await sha256File(path), big.sha256, 'the server stored the same bytes')
      const st = await stat(path)
      t.equal(st.uid, NOBODY_UID, 'owned by the virtual user (nobody)')
      t.equal(st.mode & 0o777, 0o644, 'mode 0644: readable by a later RETR')
    }

    t.test('the server requires TLS on control and data: direct, a login in clear and a transfer in clear are refused', async (t) => {
      const r = await ftplibDownload({ ...login(server), mode: 'pasv', remote: 'big.bin', out: out('clear.bin'), timeoutMs: 30_000 })
      t.equal(r.code, 1, 'ftplib without TLS fails')
      t.match(r.stderr, c.clearRefused, 'the server refuses USER in clear')
      // EPSV reaches the server directly (its 229 has no address): only PROT C can fail it.
      const d = await ftplibDownload({ ...login(server), mode: 'epsv', tls: { cafile: certs.caCert, prot: 'C' }, remote: 'big.bin', out: out('prot-c.bin'), timeoutMs: 30_000 })
      t.equal(d.code, 1, 'ftplib with TLS on control and PROT C fails')
      t.match(d.stderr, c.clearDataRefused, 'the server refuses data in clear')
    })

    t.test(`direct, EPSV (no address to be wrong), curl --no-sessionid: a data connection that does not resume is ${c.requiresReuse ? 'refused' : 'accepted'}`, async (t) => {
      const r = await curlDownload({ url: ftpUrl(login(server), 'big.bin'), mode: 'epsv', out: out('no-reuse.bin'), extra: [...curlTls, '--no-sessionid'], timeoutMs: 30_000 })
      t.ok(r.sent.includes('PROT P') && r.sent.includes('RETR big.bin'), 'curl protected its data and asked for the file')
      if (c.requiresReuse) {
        t.not(r.code, 0, 'curl fails')
        // servers.ts: ProFTPD's TLSLog is tls.log in its temp dir, beside the home.
        const log = await readFile(join(dirname(server.root), 'tls.log'), 'utf8')
        t.match(log, /client did not reuse TLS session, rejecting data connection/, 'mod_tls says why')
      } else {
        t.equal(r.code, 0, `curl downloaded: ${r.stderr.slice(-600)}`)
        t.equal(r.sha256, big.sha256, 'the same bytes')
      }
    })

    t.test(`direct, curl --ssl-reqd fails: its 227 names ${WRONG}`, async (t) => {
      const r = await curlDownload({ url: ftpUrl(login(server), 'big.bin'), mode: 'pasv', out: out('direct.bin'), extra: curlTls, timeoutMs: 30_000 })
      t.not(r.code, 0, 'curl fails')
      t.ok(r.sent.includes('PROT P'), 'after TLS on control and PROT P')
      t.match(r.stderr, /127\.0\.0\.99/, 'at the advertised address')
    })

    for (const mode of ['pasv', 'epsv'] as const) {
      t.test(`through the proxy, curl --ssl-reqd (${mode}): RETR and STOR of 16 MiB`, async (t) => {
        const down = await curlDownload({ url: ftpUrl(login(proxy), 'big.bin'), mode, out: out(`curl-${mode}.bin`), extra: curlTls, timeoutMs: 120_000 })
        t.equal(down.code, 0, `curl downloaded: ${down.stderr.slice(-600)}`)
        t.equal(down.sha256, big.sha256, 'the same bytes')
        t.ok(down.sent.includes('AUTH SSL') || down.sent.includes('AUTH TLS'), 'curl asked for TLS')
        t.ok(down.sent.includes('PROT P'), 'and protected data')
        t.ok(down.sent.includes(mode.toUpperCase()), `in ${mode.toUpperCase()}`)
        const remote = `${server.uploadDir}/curl-${mode}.bin`
        const up = await curlUpload({ url: ftpUrl(login(proxy), remote), mode, local: big.path, extra: curlTls, timeoutMs: 120_000 })
        t.equal(up.code, 0, `curl uploaded: ${up.stderr.slice(-600)}`)
        t.ok(up.sent.includes('PROT P'), 'with protected data')
        await checkStored(t, remote)
      })
    }

    t.test('through the proxy, python3 ftplib FTP_TLS with prot_p, trusting the 227: RETR and STOR of 16 MiB', async (t) => {
      const opts = { ...login(proxy), mode: 'pasv' as const, tls: { cafile: certs.caCert }, timeoutMs: 120_000 }
      const down = await ftplibDownload({ ...opts, remote: 'big.bin', out: out('ftplib.bin') })
      t.equal(down.code, 0, `ftplib downloaded: ${down.stderr.slice(-600)}`)
      t.equal(down.sha256, big.sha256, 'the same bytes')
      t.ok(down.sent.includes('PROT P'), 'ftplib protected its data')
      t.ok(down.sent.includes('PASV'), 'in PASV')
      const remote = `${server.uploadDir}/ftplib.bin`
      const up = await ftplibUpload({ ...opts, local: big.path, remote })
      t.equal(up.code, 0, `ftplib uploaded: ${up.stderr.slice(-600)}`)
      t.ok(up.sent.includes('PROT P'), 'with protected data')
      await checkStored(t, remote)
    })

    t.test("the proxy's metrics and log: every data leg protected on both sides", async (t) => {
      // Six transfers through the proxy: curl RETR and STOR in PASV and EPSV, ftplib RETR and STOR.
      const serverResumed = await handshakes(proxy, 'server', 'data', 'resumed')
      const serverFresh = await handshakes(proxy, 'server', 'data', 'ok')
      t.equal(serverResumed + serverFresh, 6, 'six protected data legs toward the server')
      t.equal(serverResumed, c.resumed, `${c.resumed} of them resumed the proxy's control session with the server`)
      t.equal((await handshakes(proxy, 'client', 'data', 'ok')) + (await handshakes(proxy, 'client', 'data', 'resumed')), 6, 'six protected data legs toward the clients')
      t.equal((await handshakes(proxy, 'client', 'data', 'failed')) + (await handshakes(proxy, 'server', 'data', 'failed')), 0, 'no data handshake failed')
      t.equal(await metricValue(proxy, 'ftp_proxy_data_connections_total', { result: 'failed' }), 0, 'no data connection failed')
      const serverControl = proxy.logs.filter((l) => l['msg'] === 'TLS on the control connection' && l['side'] === 'server')
      t.equal(serverControl.length, 6, 'six control connections to the server, each under TLS')
      t.same([...new Set(serverControl.map((l) => l['version']))], [c.version], `${c.version} toward the server`)
    })
  })
}
