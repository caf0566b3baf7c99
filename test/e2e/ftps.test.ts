// FTPS through the proxy (RFC 4217), the story under TLS: vsftpd requires TLS on control and
// data for anonymous sessions (force_anon_logins_ssl, force_anon_data_ssl), its default
// require_ssl_reuse=YES, and advertises 127.0.0.99 where nothing of it listens. Direct, every
// transfer fails; through the proxy (its own certificate toward the client, vsftpd's checked
// against the test CA), 64 MiB each way with equal sha256, both data legs protected, and the
// server's resumed. Certificates are made by the test (test/fixtures/certs.ts). Ports: 29500-29599.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { makeCertificates } from '../fixtures/certs.js'
import { metricValue, startProxy, type TestProxy } from '../fixtures/proxy.js'
import { readFileSync } from 'node:fs'
import { basicFtpDownload, basicFtpUpload, curlDownload, curlUpload, ftplibDownload, ftplibUpload, ftpUrl, lftpDownload, lftpUpload } from './lib/clients.js'
import { makeRandomFile, sha256File, startVsftpd } from './lib/servers.js'

t.setTimeout(600_000)
const MiB = 1024 * 1024
const tmp = await mkdtemp(join(tmpdir(), 'ftps-e2e-'))
t.teardown(() => rm(tmp, { recursive: true, force: true }))
const certs = makeCertificates(tmp)

const server = await startVsftpd({ port: 29500, pasvMin: 29510, pasvMax: 29549, pasvAddress: '127.0.0.99', tls: { cert: certs.cert, key: certs.key, required: true } })
t.teardown(() => server.stop())
const big = await makeRandomFile(server.root, 'big.bin', 64 * MiB)

const tlsArgs = ['--tls-cert', certs.cert, '--tls-key', certs.key, '--upstream-ca', certs.caCert]
const proxy = await startProxy(['--upstream', '127.0.0.1:29500', '--passive-ports', '29550-29569', ...tlsArgs], 'info')
t.teardown(() => proxy.close())

const login = (p: { host: string; port: number }): { host: string; port: number; user: string; password: string } => ({ host: p.host, port: p.port, user: server.user, password: server.password })
const curlTls = ['--ssl-reqd', '--cacert', certs.caCert]
const handshakes = (p: TestProxy, side: string, channel: string, result: string): Promise<number> => metricValue(p, 'ftp_proxy_tls_handshakes_total', { side, channel, result })

t.test('direct, the server is unusable: its 227 names an address it does not listen on', async (t) => {
  const out = join(tmp, 'direct.bin')
  const r = await curlDownload({ url: ftpUrl(login(server), 'big.bin'), mode: 'pasv', out, extra: curlTls, timeoutMs: 30_000 })
  t.not(r.code, 0, 'curl fails')
  t.match(r.stderr, /127\.0\.0\.99/, 'at the advertised address')
})

for (const [name, extra] of [
  ['TLS 1.3', []],
  ['TLS 1.2 toward the client', ['--tls-max', '1.2']],
] as const) {
  for (const mode of ['pasv', 'epsv'] as const) {
    t.test(`curl --ssl-reqd, ${mode}, ${name}: three RETR in one session and a STOR of 64 MiB`, async (t) => {
      // Three downloads in one invocation: curl keeps the control connection for the next URL.
      const url = ftpUrl(login(proxy), 'big.bin')
      const outs = [1, 2, 3].map((i) => join(tmp, `curl-${mode}-${extra.length}-${i}.bin`))
      const down = await curlDownload({ url, mode, out: outs[2]!, extra: [...curlTls, ...extra, url, '-o', outs[0]!, url, '-o', outs[1]!], timeoutMs: 180_000 })
      t.equal(down.code, 0, `curl downloaded: ${down.stderr.slice(-400)}`)
      for (const out of outs) t.equal(await sha256File(out), big.sha256, 'the same bytes')
      t.equal(down.sent.filter((c) => c.startsWith('RETR')).length, 3, 'three transfers')
      t.equal((down.stderr.match(/Re-using existing connection/g) ?? []).length, 2, 'in one session')
      t.ok(down.sent.includes('AUTH SSL') || down.sent.includes('AUTH TLS'), 'curl asked for TLS')
      t.ok(down.sent.includes('PROT P'), 'and protected data')
      if (extra.length > 0) t.match(down.stderr, /SSL connection using TLSv1\.2/, 'curl spoke TLS 1.2 to the proxy')
      const remote = `${server.uploadDir}/curl-${mode}-${extra.length}.bin`
      const up = await curlUpload({ url: ftpUrl(login(proxy), remote), mode, local: big.path, extra: [...curlTls, ...extra], timeoutMs: 120_000 })
      t.equal(up.code, 0, `curl uploaded: ${up.stderr.slice(-400)}`)
      t.equal(await sha256File(join(server.root, remote)), big.sha256, 'the server stored the same bytes')
    })
  }
}

t.test('python3 ftplib FTP_TLS with prot_p, trusting the 227: three RETR and a STOR of 64 MiB in one session', async (t) => {
  const out = join(tmp, 'ftplib.bin')
  const opts = { ...login(proxy), mode: 'pasv' as const, tls: { cafile: certs.caCert }, timeoutMs: 180_000 }
  const down = await ftplibDownload({ ...opts, remote: 'big.bin', out, times: 3 })
  t.equal(down.code, 0, `ftplib downloaded: ${down.stderr.slice(-400)}`)
  t.equal(down.sha256, big.sha256, 'the same bytes, the third time too')
  t.equal(down.sent.filter((c) => c.startsWith('RETR')).length, 3, 'three transfers in the session')
  const remote = `${server.uploadDir}/ftplib.bin`
  const up = await ftplibUpload({ ...opts, local: big.path, remote })
  t.equal(up.code, 0, `ftplib uploaded: ${up.stderr.slice(-400)}`)
  t.equal(await sha256File(join(server.root, remote)), big.sha256, 'the server stored the same bytes')
})

t.test('basic-ftp with secure: true: three RETR in one session and a STOR of 64 MiB', async (t) => {
  const opts = { ...login(proxy), mode: 'default' as const, tls: { ca: readFileSync(certs.caCert, 'utf8') }, timeoutMs: 180_000 }
  const out = join(tmp, 'basic.bin')
  const down = await basicFtpDownload({ ...opts, remote: 'big.bin', out, times: 3 })
  t.equal(down.code, 0, `basic-ftp downloaded: ${down.stderr.slice(-400)}`)
  t.equal(down.sent.filter((c) => c.startsWith('RETR')).length, 3, 'three transfers in the session')
  t.equal(down.sha256, big.sha256, 'the same bytes')
  const remote = `${server.uploadDir}/basic.bin`
  const up = await basicFtpUpload({ ...opts, local: big.path, remote })
  t.equal(up.code, 0, `basic-ftp uploaded: ${up.stderr.slice(-400)}`)
  t.equal(await sha256File(join(server.root, remote)), big.sha256, 'the server stored the same bytes')
})

t.test('lftp with ftp:ssl-force and ftp:ssl-protect-data: three RETR in one session and a STOR of 64 MiB', async (t) => {
  const opts = { ...login(proxy), mode: 'pasv' as const, tls: { cafile: certs.caCert }, timeoutMs: 180_000 }
  const out = join(tmp, 'lftp.bin')
  const down = await lftpDownload({ ...opts, remote: 'big.bin', out, times: 3 })
  t.equal(down.code, 0, `lftp downloaded: ${down.stderr.slice(-400)}`)
  t.equal(down.sent.filter((c) => c.startsWith('RETR')).length, 3, 'three transfers in the session')
  t.equal(down.sha256, big.sha256, 'the same bytes')
  t.ok(down.sent.includes('PROT P'), 'lftp protected its data')
  const remote = `${server.uploadDir}/lftp.bin`
  const up = await lftpUpload({ ...opts, local: big.path, remote })
  t.equal(up.code, 0, `lftp uploaded: ${up.stderr.slice(-400)}`)
  t.equal(await sha256File(join(server.root, remote)), big.sha256, 'the server stored the same bytes')
})

// RFC 4217's roles follow the FTP roles: toward the client the proxy is the TLS server also on
// a data connection it dials (the client's PORT), toward the server the TLS client also on one the
// server dials (--active-mode relay). curl 7.88's active mode under TLS fails against vsftpd
// directly as well (after accepting: "sa_addr inet_ntop() failed", then a timeout; checked
// here), so ftplib carries these.
for (const activeMode of ['passive', 'relay'] as const) {
  t.test(`active mode under TLS (--active-mode ${activeMode}): ftplib set_pasv(False), a STOR and three RETR in one session`, async (t) => {
    const pool = activeMode === 'passive' ? '29570-29579' : '29580-29589'
    const p = await startProxy(['--upstream', '127.0.0.1:29500', '--passive-ports', pool, '--active-mode', activeMode, ...tlsArgs], 'info')
    t.teardown(() => p.close())
    const remote = `${server.uploadDir}/active-${activeMode}.bin`
    const up = await ftplibUpload({ ...login(p), mode: 'port', tls: { cafile: certs.caCert }, local: big.path, remote, timeoutMs: 120_000 })
    t.equal(up.code, 0, `ftplib uploaded in active mode: ${up.stderr.slice(-400)}`)
    t.equal(await sha256File(join(server.root, remote)), big.sha256, 'the server stored the same bytes')
    const ftplibOut = join(tmp, `active-${activeMode}-ftplib.bin`)
    const again = await ftplibDownload({ ...login(p), mode: 'port', tls: { cafile: certs.caCert }, remote: 'big.bin', out: ftplibOut, times: 3, timeoutMs: 180_000 })
    t.equal(again.code, 0, `ftplib downloaded three times in active mode: ${again.stderr.slice(-400)}`)
    t.equal(again.sha256, big.sha256, 'the same bytes')
    t.ok((await handshakes(p, 'server', 'data', 'resumed')) >= 4, 'the server data legs resumed')
    t.ok((await handshakes(p, 'client', 'data', 'ok')) + (await handshakes(p, 'client', 'data', 'resumed')) >= 4, 'the client data legs were TLS, the proxy their TLS server')
  })
}

t.test('the metrics show every data leg protected, and the server side resumed', async (t) => {
  t.ok((await handshakes(proxy, 'client', 'control', 'ok')) >= 7, 'client control handshakes')
  t.ok((await handshakes(proxy, 'server', 'control', 'ok')) >= 7, 'server control handshakes')
  t.ok((await handshakes(proxy, 'server', 'data', 'resumed')) >= 24, 'every server data leg resumed the control session (vsftpd requires it)')
  t.equal(await handshakes(proxy, 'server', 'data', 'ok'), 0, 'none without resumption')
  t.ok((await handshakes(proxy, 'client', 'data', 'resumed')) >= 8, "curl's data legs resumed their session with the proxy")
  t.equal(await handshakes(proxy, 'client', 'data', 'failed') + (await handshakes(proxy, 'server', 'data', 'failed')), 0, 'no data handshake failed')
  t.equal(await metricValue(proxy, 'ftp_proxy_data_connections_total', { result: 'failed' }), 0, 'no data connection failed')
  const secured = proxy.logs.filter((l) => l['msg'] === 'TLS on the control connection')
  t.ok(secured.some((l) => l['side'] === 'server' && typeof l['version'] === 'string' && typeof l['cipher'] === 'string'), 'the log names the protocol and cipher of the server side')
  const closed = proxy.logs.filter((l) => l['msg'] === 'session closed')
  const tlsOf = (l: Record<string, unknown>): { client?: string; server?: string } => (l['tls'] ?? {})
  t.ok(closed.some((l) => /^TLSv1\.[23] \S+$/.test(tlsOf(l).client ?? '') && /^TLSv1\.3 \S+$/.test(tlsOf(l).server ?? '')), "the session's last log line names each side's protocol and cipher")
})
