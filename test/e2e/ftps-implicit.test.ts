// Implicit FTPS (TLS from the first byte, as on port 990) on either side of the proxy, with
// explicit FTPS (AUTH TLS) or clear FTP on the other: curl ftps:// to the proxy's implicit
// listener with vsftpd explicit behind it, an explicit client to vsftpd implicit_ssl=YES behind
// it, and implicit on both sides. Each vsftpd requires TLS on control and data and advertises
// 127.0.0.99, where nothing of it listens. 64 MiB each way, sha256-equal. Ports: 29850-29899.
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { makeCertificates } from '../fixtures/certs.js'
import { metricValue, startProxy, type TestProxy } from '../fixtures/proxy.js'
import { RawFtp } from '../fixtures/raw-ftp.js'
import { curlDownload, curlUpload, ftplibDownload, ftplibUpload, ftpUrl, type FtpLogin } from './lib/clients.js'
import { makeRandomFile, sha256File, startVsftpd } from './lib/servers.js'

t.setTimeout(600_000)
const MiB = 1024 * 1024
const tmp = await mkdtemp(join(tmpdir(), 'ftps-implicit-e2e-'))
t.teardown(() => rm(tmp, { recursive: true, force: true }))
const certs = makeCertificates(tmp)

const explicit = await startVsftpd({ port: 29850, pasvMin: 29851, pasvMax: 29859, pasvAddress: '127.0.0.99', tls: { cert: certs.cert, key: certs.key, required: true } })
t.teardown(() => explicit.stop())
const implicit = await startVsftpd({ port: 29860, pasvMin: 29861, pasvMax: 29869, pasvAddress: '127.0.0.99', tls: { cert: certs.cert, key: certs.key, required: true, implicit: true } })
t.teardown(() => implicit.stop())
const bigExplicit = await makeRandomFile(explicit.root, 'big.bin', 64 * MiB)
const bigImplicit = await makeRandomFile(implicit.root, 'big.bin', 64 * MiB)

const tlsArgs = ['--tls-cert', certs.cert, '--tls-key', certs.key, '--upstream-ca', certs.caCert]
const curlTls = ['--cacert', certs.caCert]
const anonymous = { user: 'anonymous', password: 'anonymous@' }
const ftpsUrl = (port: number, remote: string): string => ftpUrl({ host: '127.0.0.1', port, ...anonymous }, remote).replace(/^ftp:/, 'ftps:')
const handshakes = (p: TestProxy, side: string, channel: string, result: string): Promise<number> => metricValue(p, 'ftp_proxy_tls_handshakes_total', { side, channel, result })

// Proxies: an implicit listener in front of the explicit server (mirror: the server's TLS comes
// right after its greeting), and --upstream-tls implicit in front of the implicit server with an
// implicit listener too.
const toExplicit = await startProxy(['--upstream', '127.0.0.1:29850', '--passive-ports', '29870-29874', '--listen-implicit-tls', '127.0.0.1:29875', ...tlsArgs], 'info')
t.teardown(() => toExplicit.close())
const toImplicit = await startProxy(['--upstream', '127.0.0.1:29860', '--passive-ports', '29880-29884', '--listen-implicit-tls', '127.0.0.1:29885', '--upstream-tls', 'implicit', ...tlsArgs], 'info')
t.teardown(() => toImplicit.close())

t.test('the proxy reports its implicit listener', async (t) => {
  t.same(toExplicit.proxy.implicitAddresses(), [{ host: '127.0.0.1', port: 29875 }])
  t.equal(toExplicit.proxy.addresses().length, 1, 'apart from the explicit one')
  const line = toExplicit.logs.find((l) => l['msg'] === 'proxy listening')
  t.same(line?.['listenImplicitTls'], ['127.0.0.1:29875'], 'and logs it')
})

t.test('direct, the implicit server is unusable: its 227 names an address it does not listen on', async (t) => {
  const r = await curlDownload({ url: ftpsUrl(29860, 'big.bin'), mode: 'pasv', out: join(tmp, 'direct.bin'), extra: curlTls, timeoutMs: 30_000 })
  t.not(r.code, 0, 'curl fails')
  t.match(r.stderr, /127\.0\.0\.99/, 'at the advertised address')
})

t.test('curl ftps:// to the implicit listener, vsftpd explicit behind: RETR and STOR of 64 MiB', async (t) => {
  for (const mode of ['pasv', 'epsv'] as const) {
    const out = join(tmp, `implicit-client-${mode}.bin`)
    const down = await curlDownload({ url: ftpsUrl(29875, 'big.bin'), mode, out, extra: curlTls, timeoutMs: 120_000 })
    t.equal(down.code, 0, `curl downloaded (${mode}): ${down.stderr.slice(-400)}`)
    t.equal(down.sha256, bigExplicit.sha256, 'the same bytes')
    t.notOk(down.sent.some((c) => c.startsWith('AUTH')), 'no AUTH: TLS from the first byte')
    t.ok(down.sent.includes('PROT P'), 'protected data')
    const remote = `${explicit.uploadDir}/implicit-client-${mode}.bin`
    const up = await curlUpload({ url: ftpsUrl(29875, remote), mode, local: bigExplicit.path, extra: curlTls, timeoutMs: 120_000 })
    t.equal(up.code, 0, `curl uploaded (${mode}): ${up.stderr.slice(-400)}`)
    t.equal(await sha256File(join(explicit.root, remote)), bigExplicit.sha256, 'the server stored the same bytes')
  }
  t.ok((await handshakes(toExplicit, 'server', 'control', 'ok')) >= 4, "the server's TLS came on (AUTH TLS after its greeting)")
  t.ok((await handshakes(toExplicit, 'server', 'data', 'resumed')) >= 4, 'its data legs resumed the control session')
})

t.test('an explicit client to vsftpd implicit_ssl=YES behind --upstream-tls implicit: RETR and STOR of 64 MiB', async (t) => {
  const login: FtpLogin = { ...toImplicit, ...anonymous }
  const out = join(tmp, 'explicit-client.bin')
  const down = await curlDownload({ url: ftpUrl(login, 'big.bin'), mode: 'epsv', out, extra: ['--ssl-reqd', ...curlTls], timeoutMs: 120_000 })
  t.equal(down.code, 0, `curl downloaded: ${down.stderr.slice(-400)}`)
  t.equal(down.sha256, bigImplicit.sha256, 'the same bytes')
  t.ok(down.sent.includes('AUTH SSL') || down.sent.includes('AUTH TLS'), 'curl asked for TLS')
  const remote = `${implicit.uploadDir}/explicit-client.bin`
  const up = await curlUpload({ url: ftpUrl(login, remote), mode: 'pasv', local: bigImplicit.path, extra: ['--ssl-reqd', ...curlTls], timeoutMs: 120_000 })
  t.equal(up.code, 0, `curl uploaded: ${up.stderr.slice(-400)}`)
  t.equal(await sha256File(join(implicit.root, remote)), bigImplicit.sha256, 'the server stored the same bytes')

  const opts = { ...login, mode: 'pasv' as const, tls: { cafile: certs.caCert }, timeoutMs: 120_000 }
  const ftplib = await ftplibDownload({ ...opts, remote: 'big.bin', out: join(tmp, 'ftplib.bin'), times: 2 })
  t.equal(ftplib.code, 0, `ftplib FTP_TLS downloaded twice: ${ftplib.stderr.slice(-400)}`)
  t.equal(ftplib.sha256, bigImplicit.sha256, 'the same bytes')
  const ftplibUp = await ftplibUpload({ ...opts, local: bigImplicit.path, remote: `${implicit.uploadDir}/ftplib.bin` })
  t.equal(ftplibUp.code, 0, `ftplib FTP_TLS uploaded: ${ftplibUp.stderr.slice(-400)}`)
  t.equal(await sha256File(join(implicit.root, implicit.uploadDir, 'ftplib.bin')), bigImplicit.sha256, 'the server stored the same bytes')
})

t.test('implicit on both sides: curl ftps:// RETR and STOR of 64 MiB', async (t) => {
  const out = join(tmp, 'both.bin')
  const down = await curlDownload({ url: ftpsUrl(29885, 'big.bin'), mode: 'epsv', out, extra: curlTls, timeoutMs: 120_000 })
  t.equal(down.code, 0, `curl downloaded: ${down.stderr.slice(-400)}`)
  t.equal(down.sha256, bigImplicit.sha256, 'the same bytes')
  const remote = `${implicit.uploadDir}/both.bin`
  const up = await curlUpload({ url: ftpsUrl(29885, remote), mode: 'epsv', local: bigImplicit.path, extra: curlTls, timeoutMs: 120_000 })
  t.equal(up.code, 0, `curl uploaded: ${up.stderr.slice(-400)}`)
  t.equal(await sha256File(join(implicit.root, remote)), bigImplicit.sha256, 'the server stored the same bytes')
})

t.test('a clear client in front of the implicit server: its commands go over the TLS the proxy keeps to the server', async (t) => {
  // The client side stays clear (the proxy's own certificate is offered, not demanded): the
  // operator's choice, e.g. legacy clients inside the network.
  const login: FtpLogin = { ...toImplicit, ...anonymous }
  const out = join(tmp, 'clear.bin')
  const down = await curlDownload({ url: ftpUrl(login, 'big.bin'), mode: 'pasv', out, timeoutMs: 120_000 })
  t.equal(down.code, 0, `curl downloaded in clear: ${down.stderr.slice(-400)}`)
  t.equal(down.sha256, bigImplicit.sha256, 'the same bytes')
  t.notOk(down.sent.some((c) => c.startsWith('AUTH')), 'the client never asked for TLS')
})

t.test('a client that speaks clear FTP to the implicit listener: no reply in clear, the handshake fails and is counted, the session ends', async (t) => {
  const before = await handshakes(toExplicit, 'client', 'control', 'failed')
  const socket = net.connect({ host: '127.0.0.1', port: 29875 })
  socket.write('USER anonymous\r\n')
  const got: Buffer[] = []
  socket.on('data', (b: Buffer) => got.push(b))
  await new Promise<void>((resolve) => {
    socket.on('close', () => resolve())
    socket.on('error', () => {})
  })
  t.notMatch(Buffer.concat(got).toString('latin1'), /^220/, 'no greeting in clear')
  t.equal(await handshakes(toExplicit, 'client', 'control', 'failed'), before + 1, 'one client control handshake failed')
  const warned = toExplicit.logs.filter((l) => l['msg'] === 'TLS handshake with the implicit FTPS client failed; closing')
  t.ok(warned.length >= 1, 'logged with its reason')
})

t.test('the greeting comes over TLS on the implicit listener; AUTH TLS there gets 503', async (t) => {
  const socket = tls.connect({ host: '127.0.0.1', port: 29875, ca: readFileSync(certs.caCert), servername: 'localhost' })
  t.teardown(() => socket.destroy())
  let text = ''
  socket.on('data', (b: Buffer) => {
    text += b.toString('latin1')
  })
  const until = async (re: RegExp): Promise<void> => {
    for (let i = 0; i < 200 && !re.test(text); i++) await new Promise((r) => setTimeout(r, 50))
  }
  await until(/^220 /m)
  t.match(text, /^220 /m, "the server's greeting, over TLS")
  socket.write('AUTH TLS\r\n')
  await until(/^503 /m)
  t.match(text, /^503 TLS is already on/m, 'AUTH TLS on a TLS connection is refused')
})

t.test('hostile implicit clients (silent, half a ClientHello, garbage, 24 at once) are closed by the handshake deadline and leave nothing held', async (t) => {
  const p = await startProxy(['--upstream', '127.0.0.1:29850', '--passive-ports', '29890-29894', '--listen-implicit-tls', '127.0.0.1:29895', '--tls-handshake-timeout', '1s', ...tlsArgs], 'info')
  t.teardown(() => p.close())
  // The first 40 bytes of a real ClientHello: a record header that promises more than comes.
  const hello = await new Promise<Buffer>((resolve) => {
    const capture = net.createServer((s) => s.once('data', (b: Buffer) => {
      resolve(b.subarray(0, 40))
      s.destroy()
      capture.close()
    }))
    capture.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ host: '127.0.0.1', port: (capture.address() as net.AddressInfo).port, rejectUnauthorized: false })
      c.on('error', () => {})
    })
  })
  const kinds: Array<[string, Buffer]> = [
    ['silent', Buffer.alloc(0)],
    ['half a ClientHello', hello],
    ['garbage', Buffer.from('\x16\x03\x01\xff\xff' + 'A'.repeat(300), 'latin1')],
  ]
  const started = Date.now()
  const closed = await Promise.all(
    // 24: below vsftpd's listen backlog of 32, as each one opens a session to it first.
    Array.from({ length: 24 }, (_, i) => {
      const [, bytes] = kinds[i % kinds.length]!
      return new Promise<number>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: 29895 })
        s.on('error', () => {})
        // Whatever the proxy sends back (an alert) is read, so that its FIN is seen: a socket
        // whose received bytes nobody reads never emits 'end', nor 'close'.
        s.resume()
        s.on('connect', () => {
          if (bytes.length > 0) s.write(bytes)
        })
        s.on('close', () => resolve(Date.now() - started))
        // Bounded: a socket the proxy never closes is ended here, and the assertion below fails.
        setTimeout(() => s.destroy(), 30_000).unref()
      })
    }),
  )
  t.ok(Math.max(...closed) < 25_000, `every one was closed by the proxy (the last after ${Math.max(...closed)} ms; deadline 1 s, generous margin)`)
  for (let i = 0; i < 100 && (await metricValue(p, 'ftp_proxy_sessions_active')) > 0; i++) await new Promise((r) => setTimeout(r, 100))
  t.equal(await metricValue(p, 'ftp_proxy_sessions_active'), 0, 'no session is left')
  t.equal(p.proxy.sessionCount, 0, 'none held in the proxy')
  t.equal(p.proxy.pool.inUse, 0, 'no pool port held')
  t.ok((await handshakes(p, 'client', 'control', 'failed')) >= 24, 'each counted as a failed handshake')
  // And the listener still serves a real client.
  const down = await curlDownload({ url: ftpsUrl(29895, 'big.bin'), mode: 'epsv', out: join(tmp, 'after-hostile.bin'), extra: curlTls, timeoutMs: 120_000 })
  t.equal(down.code, 0, `a real client is served afterwards: ${down.stderr.slice(-300)}`)
  t.equal(down.sha256, bigExplicit.sha256, 'the same bytes')
})

t.test('--upstream-tls implicit toward a server that accepts and never speaks TLS: the client gets 421 by the handshake deadline', async (t) => {
  // A scriptable double: no real server accepts and then stays silent on demand.
  const held: net.Socket[] = []
  const silent = net.createServer((s) => {
    held.push(s)
    s.on('error', () => {})
  })
  await new Promise<void>((resolve) => silent.listen(29896, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of held) s.destroy()
    silent.close()
  })
  const p = await startProxy(['--upstream', '127.0.0.1:29896', '--passive-ports', '29897-29899', '--upstream-tls', 'implicit', '--tls-handshake-timeout', '1s', ...tlsArgs], 'info')
  t.teardown(() => p.close())
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  const reply = await c.reply()
  t.equal(reply?.code, 421, 'a 421')
  t.match(reply?.text, /TLS handshake with the FTP server failed/, 'that says why')
  t.equal(await handshakes(p, 'server', 'control', 'failed'), 1, 'counted')
  for (let i = 0; i < 100 && (await metricValue(p, 'ftp_proxy_sessions_active')) > 0; i++) await new Promise((r) => setTimeout(r, 100))
  t.equal(await metricValue(p, 'ftp_proxy_sessions_active'), 0, 'and the session is gone')
})
