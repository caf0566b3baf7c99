// FTPS in the other combinations, and its failures (RFC 4217 through the proxy):
//   - a TLS client to a clear vsftpd with --upstream-tls off; under the default mirror the same
//     client is refused TLS (534) and nothing of its login reaches the server;
//   - a clear client to a vsftpd that requires TLS, with --upstream-tls required;
//   - failures, each counted and ended with a clear reply while the proxy goes on: a client data
//     connection that does not resume under --client-data-tls-reuse required, a client that
//     offers no common version, garbage instead of a ClientHello, AUTH TLS and then silence, a
//     server certificate that fails verification;
//   - FEAT offering AUTH TLS exactly when the client side does; --client-tls required.
// Certificates are made by the test. Ports: 29600-29699.
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { makeCertificates } from '../fixtures/certs.js'
import { metricValue, startProxy, type TestProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp, type RawReply } from '../fixtures/raw-ftp.js'
import { curlDownload, curlUpload, ftpUrl } from './lib/clients.js'
import { makeRandomFile, sha256File, startVsftpd } from './lib/servers.js'

t.setTimeout(600_000)
const MiB = 1024 * 1024
const tmp = await mkdtemp(join(tmpdir(), 'ftps-modes-'))
t.teardown(() => rm(tmp, { recursive: true, force: true }))
const certs = makeCertificates(tmp)
const tlsArgs = ['--tls-cert', certs.cert, '--tls-key', certs.key]
const curlTls = ['--ssl-reqd', '--cacert', certs.caCert]

const clear = await startVsftpd({ port: 29600, pasvMin: 29610, pasvMax: 29629, pasvAddress: '127.0.0.99' })
t.teardown(() => clear.stop())
const secure = await startVsftpd({ port: 29630, pasvMin: 29640, pasvMax: 29659, pasvAddress: '127.0.0.99', tls: { cert: certs.cert, key: certs.key, required: true } })
t.teardown(() => secure.stop())
const clearFile = await makeRandomFile(clear.root, 'big.bin', 64 * MiB)
const secureFile = await makeRandomFile(secure.root, 'big.bin', 64 * MiB)

async function proxyFor(port: number, pool: string, args: string[], level = 'info'): Promise<TestProxy> {
  const p = await startProxy(['--upstream', `127.0.0.1:${port}`, '--passive-ports', pool, ...args], level)
  t.teardown(() => p.close())
  return p
}
const login = (p: { host: string; port: number }): { host: string; port: number; user: string; password: string } => ({ host: p.host, port: p.port, user: 'anonymous', password: 'anonymous@' })
const handshakes = (p: TestProxy, side: string, channel: string, result: string): Promise<number> => metricValue(p, 'ftp_proxy_tls_handshakes_total', { side, channel, result })

async function roundTrip(t: Test, p: TestProxy, file: { path: string; sha256: string }, root: string, extra: string[], name: string): Promise<void> {
  const out = join(tmp, `${name}.bin`)
  const down = await curlDownload({ url: ftpUrl(login(p), 'big.bin'), mode: 'pasv', out, extra, timeoutMs: 120_000 })
  t.equal(down.code, 0, `downloaded: ${down.stderr.slice(-300)}`)
  t.equal(down.sha256, file.sha256, 'the same bytes down')
  const remote = `upload/${name}.bin`
  const up = await curlUpload({ url: ftpUrl(login(p), remote), mode: 'pasv', local: file.path, extra, timeoutMs: 120_000 })
  t.equal(up.code, 0, `uploaded: ${up.stderr.slice(-300)}`)
  t.equal(await sha256File(join(root, remote)), file.sha256, 'the same bytes up')
}

t.test('a TLS client to a clear server with --upstream-tls off', async (t) => {
  const p = await proxyFor(29600, '29660-29664', [...tlsArgs, '--upstream-tls', 'off'])
  await roundTrip(t, p, clearFile, clear.root, curlTls, 'tls-to-clear')
  t.ok((await handshakes(p, 'client', 'data', 'resumed')) >= 2, 'the client data legs were TLS')
  t.equal(await handshakes(p, 'server', 'control', 'ok'), 0, 'the server side stayed clear')
})

t.test('a TLS client to a clear server under mirror is refused TLS; its login never reaches the server', async (t) => {
  const p = await proxyFor(29600, '29665-29669', tlsArgs, 'debug')
  const r = await curlDownload({ url: ftpUrl(login(p), 'big.bin'), mode: 'pasv', out: join(tmp, 'refused.bin'), extra: curlTls, timeoutMs: 30_000 })
  t.not(r.code, 0, 'curl --ssl-reqd fails')
  t.match(r.stderr, /534 The FTP server behind this proxy does not offer TLS/, 'with the proxy\'s 534')
  t.notOk(r.sent.some((c) => c.startsWith('USER') || c.startsWith('PASS')), 'curl sent no USER or PASS')
  const forwarded = p.logs.filter((l) => l['msg'] === 'command' && /^(USER|PASS)/.test(String((l['cmd'] as { verb?: string } | undefined)?.verb ?? '')))
  t.equal(forwarded.length, 0, 'no USER or PASS came through the proxy')
  t.ok(p.logs.some((l) => l['msg'] === 'the FTP server refused AUTH TLS; the client is refused TLS (--upstream-tls mirror)'), 'logged')
})

t.test('a clear client to a server that requires TLS, with --upstream-tls required', async (t) => {
  const p = await proxyFor(29630, '29670-29674', ['--upstream-tls', 'required', '--upstream-ca', certs.caCert])
  await roundTrip(t, p, secureFile, secure.root, [], 'clear-to-tls')
  t.ok((await handshakes(p, 'server', 'control', 'ok')) >= 2, 'the server side was TLS')
  t.ok((await handshakes(p, 'server', 'data', 'resumed')) >= 2, 'its data legs resumed the control session')
  t.equal(await handshakes(p, 'client', 'control', 'ok'), 0, 'the client side stayed clear')
})

t.test('failures: each counted, each with a clear end, the proxy going on', async (t) => {
  const p = await proxyFor(29630, '29675-29684', [...tlsArgs, '--upstream-ca', certs.caCert, '--client-data-tls-reuse', 'required', '--tls-handshake-timeout', '2s'])

  // curl --no-sessionid: its data connection does a full handshake.
  const noReuse = await curlDownload({ url: ftpUrl(login(p), 'big.bin'), mode: 'pasv', out: join(tmp, 'noreuse.bin'), extra: [...curlTls, '--no-sessionid'], timeoutMs: 60_000 })
  t.not(noReuse.code, 0, 'a data connection that does not resume is refused')
  // curl stops at the data connection's close, before the 426 that follows.
  t.match(noReuse.stderr, /< 42[56] |transfer closed with 67108864 bytes remaining/, 'no byte of the file reaches the client')
  t.ok((await metricValue(p, 'ftp_proxy_data_connection_failures_total', { reason: 'tls_handshake' })) >= 1, 'counted as tls_handshake')
  t.ok((await handshakes(p, 'client', 'data', 'failed')) >= 1, 'and as a failed data handshake')

  // A client that offers only versions the proxy does not speak (it requires TLS 1.2 or later).
  const before = await handshakes(p, 'client', 'control', 'failed')
  const old = await curlDownload({ url: ftpUrl(login(p), 'big.bin'), mode: 'pasv', out: join(tmp, 'old.bin'), extra: [...curlTls, '--tlsv1.0', '--tls-max', '1.1'], timeoutMs: 30_000 })
  t.not(old.code, 0, 'TLS 1.0/1.1 only: refused')

  // Garbage instead of a ClientHello.
  const garbage = await RawFtp.connect(p.host, p.port)
  t.equal((await garbage.reply())?.code, 220)
  t.equal((await garbage.cmd('AUTH TLS')).code, 234)
  garbage.socket.write('this is not a TLS record\r\nUSER anonymous\r\n')
  await once(garbage.socket, 'close')
  t.pass('garbage: the proxy closed the connection')

  // AUTH TLS, then silence: the handshake deadline ends it.
  const silent = await RawFtp.connect(p.host, p.port)
  t.equal((await silent.reply())?.code, 220)
  t.equal((await silent.cmd('AUTH TLS')).code, 234)
  const started = Date.now()
  await once(silent.socket, 'close')
  const waited = (Date.now() - started) / 1000
  t.ok(waited >= 1.5 && waited < 20, `silence: closed by the 2 s handshake deadline (after ${waited.toFixed(1)} s)`)
  t.ok((await handshakes(p, 'client', 'control', 'failed')) >= before + 2, 'the failed control handshakes are counted')

  // Still serving.
  const good = await curlDownload({ url: ftpUrl(login(p), 'big.bin'), mode: 'pasv', out: join(tmp, 'good.bin'), extra: curlTls, timeoutMs: 120_000 })
  t.equal(good.sha256, secureFile.sha256, 'a good client still transfers')
  const deadline = Date.now() + 10_000
  while (p.proxy.sessionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  t.equal(p.proxy.sessionCount, 0, 'every session released')
  t.equal(p.proxy.pool.inUse, 0, 'every pool port released')
})

t.test('a protected upload that ends with a bare FIN (no close_notify) is not stored as complete', async (t) => {
  const p = await proxyFor(29630, '29696-29699', [...tlsArgs, '--upstream-ca', certs.caCert])
  const body = randomBytes(4 * MiB)
  /** A logged-in protected session through the proxy and a protected data connection for one transfer. */
  async function protectedData(): Promise<{ c: RawFtp; raw: net.Socket; data: tls.TLSSocket }> {
    const plain = await RawFtp.connect(p.host, p.port)
    t.equal((await plain.reply())?.code, 220)
    t.equal((await plain.cmd('AUTH TLS')).code, 234)
    const secured = tls.connect({ socket: plain.socket, ca: readFileSync(certs.caCert), servername: 'localhost' })
    await once(secured, 'secureConnect')
    const c = RawFtp.over(secured)
    t.teardown(() => c.close())
    await c.cmd('USER anonymous')
    t.equal((await c.cmd('PASS anonymous@')).code, 230)
    t.equal((await c.cmd('PBSZ 0')).code, 200)
    t.equal((await c.cmd('PROT P')).code, 200)
    const ep = pasvEndpoint((await c.cmd('PASV')).text)
    const raw = net.connect(ep.port, ep.host)
    raw.on('error', () => {})
    const session = secured.getSession()
    const data = tls.connect({ socket: raw, ca: readFileSync(certs.caCert), servername: 'localhost', ...(session === undefined ? {} : { session }) })
    data.on('error', () => {})
    await once(data, 'secureConnect')
    return { c, raw, data }
  }
  async function upload(name: string, end: 'close_notify' | 'bare FIN'): Promise<RawReply | null> {
    const { c, raw, data } = await protectedData()
    c.socket.write(`STOR upload/${name}\r\n`)
    t.equal((await c.reply())?.code, 150)
    await new Promise<void>((resolve) => data.write(body, () => resolve()))
    // A clean end sends close_notify, then FIN; a truncation is a FIN alone.
    if (end === 'close_notify') data.end()
    else raw.end()
    return c.reply(30_000)
  }
  const clean = await upload('clean.bin', 'close_notify')
  t.equal(clean?.code, 226, `an upload ended with close_notify completes (${clean?.text ?? 'closed'})`)
  t.equal(createHash('sha256').update(readFileSync(join(secure.root, 'upload/clean.bin'))).digest('hex'), createHash('sha256').update(body).digest('hex'), 'and is stored whole')
  // A download the client ends with a bare FIN once it has every byte (ftplib closes without
  // unwrap): complete, answered 226 (the second review found it answered 426).
  {
    const { c, raw, data } = await protectedData()
    c.socket.write('RETR big.bin\r\n')
    // The bare FIN goes as soon as the last byte is in, before the proxy can have passed the
    // server's 226 on.
    const chunks: Buffer[] = []
    let got = 0
    data.on('data', (b: Buffer) => {
      chunks.push(b)
      got += b.length
      if (got === 64 * MiB) raw.end()
    })
    await once(raw, 'close')
    const replies = [await c.reply(30_000), await c.reply(30_000)]
    t.same(replies.map((r) => r?.code), [150, 226], 'a complete download closed by a bare FIN is answered 226')
    t.equal(createHash('sha256').update(Buffer.concat(chunks)).digest('hex'), secureFile.sha256, 'every byte')
  }
  const cut = await upload('cut.bin', 'bare FIN')
  t.not(cut?.code, 226, `an upload ended by a bare FIN is not answered 226 (${cut?.text ?? 'closed'})`)
  t.ok((await metricValue(p, 'ftp_proxy_data_connection_failures_total', { reason: 'reset' })) >= 1, 'the proxy counted a broken transfer')
})

t.test('a server certificate that fails verification ends the session with a 421', async (t) => {
  // No --upstream-ca: the test CA is not in the system store.
  const p = await proxyFor(29630, '29685-29689', tlsArgs)
  const r = await curlDownload({ url: ftpUrl(login(p), 'big.bin'), mode: 'pasv', out: join(tmp, 'badcert.bin'), extra: curlTls, timeoutMs: 30_000 })
  t.not(r.code, 0, 'the transfer fails')
  t.match(r.stderr, /421 TLS handshake with the FTP server failed/, 'with a 421 saying why')
  t.ok((await handshakes(p, 'server', 'control', 'failed')) >= 1, 'counted')
  const line = p.logs.find((l) => l['msg'] === 'TLS handshake with the FTP server failed; closing')
  t.match(line?.['hint'], /--upstream-ca/, 'the log line says what to set')
})

t.test('FEAT offers AUTH TLS, PBSZ and PROT exactly when the client side does; --client-tls required', async (t) => {
  const offered = await proxyFor(29630, '29690-29691', [...tlsArgs, '--upstream-ca', certs.caCert])
  const plain = await proxyFor(29630, '29692-29693', ['--upstream-ca', certs.caCert])
  const required = await proxyFor(29630, '29694-29695', [...tlsArgs, '--upstream-ca', certs.caCert, '--client-tls', 'required'])
  for (const [p, want] of [[offered, true], [plain, false]] as const) {
    const c = await RawFtp.connect(p.host, p.port)
    await c.reply()
    const feat = await c.cmd('FEAT')
    t.equal(/^ AUTH TLS$/m.test(feat.text), want, `AUTH TLS ${want ? 'offered' : 'not offered'}`)
    t.equal(/^ PROT$/m.test(feat.text) && /^ PBSZ$/m.test(feat.text), want, `PBSZ and PROT ${want ? 'offered' : 'not offered'}`)
    t.equal((feat.text.match(/^ AUTH /gm) ?? []).length, want ? 1 : 0, "the server's own AUTH lines are not passed on")
    c.close()
  }
  const c = await RawFtp.connect(required.host, required.port)
  await c.reply()
  t.equal((await c.cmd('USER anonymous')).code, 530, 'USER before AUTH TLS: 530')
  t.equal(await metricValue(required, 'ftp_proxy_commands_refused_total', { reason: 'tls_required' }), 1, 'refused by the proxy, counted')
  c.close()
})
