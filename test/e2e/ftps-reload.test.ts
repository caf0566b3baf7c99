// A certificate rotated on disk and SIGHUP sent to the proxy process (the built CLI) during a
// 256 MiB protected download: the download completes with equal sha256 (a session keeps the TLS
// settings it started with), the next session is served the new certificate (its fingerprint
// checked), and a broken certificate file is refused with a log line while the new one stays.
// Ports: 29700-29749.
import { once } from 'node:events'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import t from 'tap'
import { makeCertificates } from '../fixtures/certs.js'
import { startProxyProcess } from '../fixtures/proxy-process.js'
import { RawFtp } from '../fixtures/raw-ftp.js'
import { curlDownload, ftpUrl } from './lib/clients.js'
import { makeRandomFile, startVsftpd } from './lib/servers.js'

t.setTimeout(300_000)
const MiB = 1024 * 1024
const tmp = await mkdtemp(join(tmpdir(), 'ftps-reload-'))
t.teardown(() => rm(tmp, { recursive: true, force: true }))
mkdirSync(join(tmp, 'a'))
mkdirSync(join(tmp, 'b'))
const first = makeCertificates(join(tmp, 'a'))
const second = makeCertificates(join(tmp, 'b'))
// What the proxy is told to read: a copy it can be given the other certificate in.
const certPath = join(tmp, 'proxy.pem')
const keyPath = join(tmp, 'proxy.key')
copyFileSync(first.cert, certPath)
copyFileSync(first.key, keyPath)

const server = await startVsftpd({ port: 29700, pasvMin: 29710, pasvMax: 29729, pasvAddress: '127.0.0.99', tls: { cert: first.cert, key: first.key, required: true } })
t.teardown(() => server.stop())
const big = await makeRandomFile(server.root, 'big.bin', 256 * MiB)
const proxy = await startProxyProcess({
  upstream: '127.0.0.1:29700',
  args: ['--passive-ports', '29730-29749', '--tls-cert', certPath, '--tls-key', keyPath, '--upstream-ca', first.caCert],
})
t.teardown(() => proxy.stop())

/** The fingerprint of the certificate a new session is served after AUTH TLS. */
async function servedFingerprint(): Promise<string> {
  const c = await RawFtp.connect(proxy.host, proxy.port)
  try {
    await c.reply()
    await c.cmd('AUTH TLS')
    const s = tls.connect({ socket: c.socket, rejectUnauthorized: false })
    await once(s, 'secureConnect')
    const fp = s.getPeerCertificate().fingerprint256
    s.destroy()
    return fp
  } finally {
    c.close()
  }
}

t.test('a certificate swapped on disk and SIGHUP during a 256 MiB protected download', async (t) => {
  t.equal(await servedFingerprint(), first.fingerprint, 'the first certificate is served')
  const url = ftpUrl({ host: proxy.host, port: proxy.port, user: 'anonymous', password: 'a@' }, 'big.bin')
  // The client trusts both CAs: the session started with the first certificate keeps it.
  const bundle = join(tmp, 'both-ca.pem')
  writeFileSync(bundle, Buffer.concat([readFileSync(first.caCert), readFileSync(second.caCert)]))
  const download = curlDownload({ url, mode: 'epsv', out: join(tmp, 'big.out'), extra: ['--ssl-reqd', '--cacert', bundle, '--limit-rate', '64M'], timeoutMs: 120_000 })
  // Swap once the transfer runs (a PROT P data connection is open).
  const until = Date.now() + 30_000
  while (Date.now() < until && !proxy.logs.some((l) => l['msg'] === 'passive reply rewritten')) await new Promise((r) => setTimeout(r, 20))
  await new Promise((r) => setTimeout(r, 500))
  copyFileSync(second.cert, certPath)
  copyFileSync(second.key, keyPath)
  process.kill(proxy.pid, 'SIGHUP')
  const reloaded = Date.now() + 10_000
  while (Date.now() < reloaded && !proxy.logs.some((l) => l['msg'] === 'config reloaded')) await new Promise((r) => setTimeout(r, 20))
  t.ok(proxy.logs.some((l) => l['msg'] === 'config reloaded'), 'the reload was taken')
  const r = await download
  t.equal(r.code, 0, `the download went on: ${r.stderr.slice(-300)}`)
  t.equal(r.sha256, big.sha256, 'every byte, equal sha256')
  t.equal(await servedFingerprint(), second.fingerprint, 'the next session is served the new certificate')

  // A broken certificate file: refused, with a log line; the running certificate stays.
  writeFileSync(certPath, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n')
  process.kill(proxy.pid, 'SIGHUP')
  const rejected = Date.now() + 10_000
  while (Date.now() < rejected && !proxy.logs.some((l) => String(l['msg']).startsWith('config reload rejected'))) await new Promise((r) => setTimeout(r, 20))
  const line = proxy.logs.find((l) => String(l['msg']).startsWith('config reload rejected'))
  t.match(line?.['error'], /tlsCert/, 'refused, naming the certificate')
  t.equal(await servedFingerprint(), second.fingerprint, 'the running certificate stays')
  t.equal(proxy.exitStatus(), null, 'the proxy is still running')
})
