// Certificates as operators manage them, through the proxy in front of vsftpd (TLS required on
// control and data, advertising 127.0.0.99): several certificates chosen by the name the client
// asks for (SNI); client certificates demanded (--client-cert required) or checked when shown
// (optional) against --tls-ca; and the proxy's own client certificate toward a vsftpd that
// requires one (require_cert, validate_cert). Certificates are made by the test. Ports: 29900-29949.
import { once } from 'node:events'
import { mkdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import t from 'tap'
import { issueCertificate, makeCertificates } from '../fixtures/certs.js'
import { metricValue, startProxy, type TestProxy } from '../fixtures/proxy.js'
import { RawFtp } from '../fixtures/raw-ftp.js'
import { curlDownload, curlUpload, ftpUrl, type FtpLogin } from './lib/clients.js'
import { makeRandomFile, sha256File, startVsftpd } from './lib/servers.js'

t.setTimeout(300_000)
const MiB = 1024 * 1024
const tmp = await mkdtemp(join(tmpdir(), 'ftps-certs-'))
t.teardown(() => rm(tmp, { recursive: true, force: true }))
const certs = makeCertificates(tmp)
const nameA = issueCertificate(tmp, 'ftp-a.test')
const nameB = issueCertificate(tmp, 'ftp-b.test')
const client = issueCertificate(tmp, 'ftp-client', { client: true })
const proxyClient = issueCertificate(tmp, 'ftp-pasv-proxy', { client: true })
// A certificate from a CA that the proxy does not trust.
mkdirSync(join(tmp, 'other'))
makeCertificates(join(tmp, 'other'))
const intruder = issueCertificate(join(tmp, 'other'), 'intruder', { client: true })

const server = await startVsftpd({ port: 29900, pasvMin: 29901, pasvMax: 29909, pasvAddress: '127.0.0.99', tls: { cert: certs.cert, key: certs.key, required: true } })
t.teardown(() => server.stop())
const file = await makeRandomFile(server.root, 'file.bin', 16 * MiB)

const upstreamCa = ['--upstream-ca', certs.caCert]
const anonymous = { user: 'anonymous', password: 'anonymous@' }
const curlTls = ['--ssl-reqd', '--cacert', certs.caCert]
const handshakes = (p: TestProxy, side: string, channel: string, result: string): Promise<number> => metricValue(p, 'ftp_proxy_tls_handshakes_total', { side, channel, result })

/** The certificate a session is served after AUTH TLS when the client asks for `servername`. */
async function servedFingerprint(p: TestProxy, servername: string): Promise<string> {
  const c = await RawFtp.connect(p.host, p.port)
  try {
    await c.reply()
    await c.cmd('AUTH TLS')
    const s = tls.connect({ socket: c.socket, servername, rejectUnauthorized: false })
    await once(s, 'secureConnect')
    const fp = s.getPeerX509Certificate()?.fingerprint256 ?? ''
    s.destroy()
    return fp
  } finally {
    c.close()
  }
}

t.test('several certificates: a client asking for each name gets that certificate', async (t) => {
  const p = await startProxy(['--upstream', '127.0.0.1:29900', '--passive-ports', '29910-29914', '--tls-cert', certs.cert, '--tls-key', certs.key, '--tls-cert', nameA.cert, '--tls-key', nameA.key, '--tls-cert', nameB.cert, '--tls-key', nameB.key, ...upstreamCa], 'info')
  t.teardown(() => p.close())
  t.equal(await servedFingerprint(p, 'ftp-a.test'), nameA.fingerprint, 'ftp-a.test: its certificate')
  t.equal(await servedFingerprint(p, 'ftp-b.test'), nameB.fingerprint, 'ftp-b.test: its certificate')
  t.equal(await servedFingerprint(p, 'localhost'), certs.fingerprint, 'localhost: the first certificate')
  t.equal(await servedFingerprint(p, 'unknown.test'), certs.fingerprint, 'a name no certificate has: the first (the default)')
  // curl checks the certificate against the name it dialled, on control and data connections.
  for (const name of ['ftp-a.test', 'ftp-b.test']) {
    const login: FtpLogin = { host: name, port: p.port, ...anonymous }
    const out = join(tmp, `${name}.bin`)
    const down = await curlDownload({ url: ftpUrl(login, 'file.bin'), mode: 'epsv', out, extra: [...curlTls, '--resolve', `${name}:${p.port}:127.0.0.1`], timeoutMs: 60_000 })
    t.equal(down.code, 0, `curl to ${name} checked the certificate and downloaded: ${down.stderr.slice(-400)}`)
    t.match(down.stderr, new RegExp(`subject: CN=${name.replace('.', '\\.')}`), `curl was shown ${name}'s certificate`)
    t.equal(down.sha256, file.sha256, 'the same bytes')
  }
  t.ok(p.logs.some((l) => l['msg'] === 'TLS on the control connection' && l['servername'] === 'ftp-b.test'), 'the log names the name asked for')
})

t.test('client certificates required: none is refused at the handshake, a foreign one too, one from --tls-ca transfers', async (t) => {
  const p = await startProxy(['--upstream', '127.0.0.1:29900', '--passive-ports', '29915-29919', '--tls-cert', certs.cert, '--tls-key', certs.key, '--tls-ca', certs.caCert, '--client-cert', 'required', ...upstreamCa], 'info')
  t.teardown(() => p.close())
  const login: FtpLogin = { ...p, ...anonymous }
  const url = ftpUrl(login, 'file.bin')

  const none = await curlDownload({ url, mode: 'epsv', out: join(tmp, 'none.bin'), extra: curlTls, timeoutMs: 60_000 })
  t.not(none.code, 0, 'curl without a certificate fails')
  t.notMatch(none.stderr, /^< 230/m, 'and is never logged in')
  const foreign = await curlDownload({ url, mode: 'epsv', out: join(tmp, 'foreign.bin'), extra: [...curlTls, '--cert', intruder.cert, '--key', intruder.key], timeoutMs: 60_000 })
  t.not(foreign.code, 0, 'curl with a certificate of another CA fails')
  t.notMatch(foreign.stderr, /^< 230/m, 'and is never logged in')
  t.equal(await handshakes(p, 'client', 'control', 'failed'), 2, 'two client handshakes failed')
  const warned = p.logs.filter((l) => l['msg'] === 'TLS handshake with the client failed; closing').map((l) => String(l['error']))
  t.ok(warned.some((e) => /certificate/.test(e)), `the log says why: ${warned.join(' | ')}`)
  const hints = p.logs.filter((l) => l['msg'] === 'TLS handshake with the client failed; closing').map((l) => String(l['hint']))
  t.ok(hints.length >= 2 && hints.every((h) => /the proxy refused the client's certificate/.test(h)), `and the hint names the proxy's refusal: ${hints.join(' | ')}`)

  const withCert = [...curlTls, '--cert', client.cert, '--key', client.key]
  const down = await curlDownload({ url, mode: 'epsv', out: join(tmp, 'client-cert.bin'), extra: withCert, timeoutMs: 60_000 })
  t.equal(down.code, 0, `curl with a certificate from --tls-ca downloaded: ${down.stderr.slice(-400)}`)
  t.equal(down.sha256, file.sha256, 'the same bytes')
  const remote = `${server.uploadDir}/client-cert.bin`
  const up = await curlUpload({ url: ftpUrl(login, remote), mode: 'pasv', local: file.path, extra: withCert, timeoutMs: 60_000 })
  t.equal(up.code, 0, `and uploaded: ${up.stderr.slice(-400)}`)
  t.equal(await sha256File(join(server.root, remote)), file.sha256, 'the server stored the same bytes')
  t.equal(await handshakes(p, 'client', 'data', 'failed'), 0, 'its data connections passed the same check')
  const secured = p.logs.filter((l) => l['msg'] === 'TLS on the control connection' && l['side'] === 'client')
  t.ok(secured.some((l) => String(l['clientCertificate']).includes('CN=ftp-client')), "the log names the client's certificate")
})

t.test('client certificates optional: none is let in, a foreign one is refused', async (t) => {
  const p = await startProxy(['--upstream', '127.0.0.1:29900', '--passive-ports', '29920-29924', '--tls-cert', certs.cert, '--tls-key', certs.key, '--tls-ca', certs.caCert, '--client-cert', 'optional', ...upstreamCa], 'info')
  t.teardown(() => p.close())
  const url = ftpUrl({ ...p, ...anonymous }, 'file.bin')
  const none = await curlDownload({ url, mode: 'epsv', out: join(tmp, 'optional-none.bin'), extra: curlTls, timeoutMs: 60_000 })
  t.equal(none.code, 0, `curl without a certificate downloaded: ${none.stderr.slice(-400)}`)
  t.equal(none.sha256, file.sha256, 'the same bytes')
  const foreign = await curlDownload({ url, mode: 'epsv', out: join(tmp, 'optional-foreign.bin'), extra: [...curlTls, '--cert', intruder.cert, '--key', intruder.key], timeoutMs: 60_000 })
  t.not(foreign.code, 0, 'curl with a certificate of another CA fails')
  t.notMatch(foreign.stderr, /^< 230/m, 'and is never logged in')
})

t.test("a server that requires a client certificate accepts the proxy's (--upstream-tls-cert)", async (t) => {
  const strict = await startVsftpd({ port: 29930, pasvMin: 29931, pasvMax: 29939, pasvAddress: '127.0.0.99', tls: { cert: certs.cert, key: certs.key, required: true, clientCa: certs.caCert } })
  t.teardown(() => strict.stop())
  const strictFile = await makeRandomFile(strict.root, 'file.bin', 16 * MiB)
  const base = ['--upstream', '127.0.0.1:29930', '--tls-cert', certs.cert, '--tls-key', certs.key, ...upstreamCa]

  const without = await startProxy([...base, '--passive-ports', '29940-29944'], 'info')
  t.teardown(() => without.close())
  const refused = await curlDownload({ url: ftpUrl({ ...without, ...anonymous }, 'file.bin'), mode: 'epsv', out: join(tmp, 'strict-none.bin'), extra: curlTls, timeoutMs: 60_000 })
  t.not(refused.code, 0, 'without a certificate of its own, the proxy is refused by the server')
  t.ok((await handshakes(without, 'server', 'control', 'failed')) + (await handshakes(without, 'server', 'control', 'ok')) >= 1, 'the proxy tried')

  const own = await startProxy([...base, '--passive-ports', '29945-29949', '--upstream-tls-cert', proxyClient.cert, '--upstream-tls-key', proxyClient.key], 'info')
  t.teardown(() => own.close())
  const login: FtpLogin = { ...own, ...anonymous }
  const down = await curlDownload({ url: ftpUrl(login, 'file.bin'), mode: 'epsv', out: join(tmp, 'strict.bin'), extra: curlTls, timeoutMs: 60_000 })
  t.equal(down.code, 0, `with --upstream-tls-cert the download works: ${down.stderr.slice(-400)}`)
  t.equal(down.sha256, strictFile.sha256, 'the same bytes')
  const remote = `${strict.uploadDir}/strict.bin`
  const up = await curlUpload({ url: ftpUrl(login, remote), mode: 'epsv', local: strictFile.path, extra: curlTls, timeoutMs: 60_000 })
  t.equal(up.code, 0, `and the upload: ${up.stderr.slice(-400)}`)
  t.equal(await sha256File(join(strict.root, remote)), strictFile.sha256, 'the server stored the same bytes')
  t.ok((await handshakes(own, 'server', 'data', 'resumed')) >= 2, "the server's data legs resumed, the proxy's certificate carried over")
})

t.test('a client certificate file that cannot be used stops the start', async (t) => {
  await t.rejects(startProxy(['--upstream', '127.0.0.1:29900', '--upstream-tls-cert', proxyClient.cert, '--upstream-tls-key', certs.key]), { name: 'ConfigError', message: /upstreamTlsCert.*usable certificate/ })
  await t.rejects(startProxy(['--upstream', '127.0.0.1:29900', '--tls-cert', certs.cert, '--tls-key', certs.key, '--tls-ca', join(tmp, 'no-such-ca.pem'), '--client-cert', 'required']), { name: 'ConfigError', message: /tlsCa.*cannot read/ })
  t.equal(readFileSync(proxyClient.cert, 'utf8').includes('BEGIN CERTIFICATE'), true, 'the certificate file itself is fine: the key does not match it')
})
