// An IPv6 client through the proxy to an IPv4-only vsftpd; and the idle timeout, which counts
// only while no transfer runs. Ports: 23700-23799.
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp } from '../fixtures/raw-ftp.js'
import { runProcess } from './lib/proc.js'
import { makeRandomFile, sha256File, startVsftpd } from './lib/servers.js'

t.setTimeout(120_000)
const server = await startVsftpd({ port: 23700, pasvMin: 23710, pasvMax: 23749, pasvAddress: '127.0.0.99' })
t.teardown(() => server.stop())
const file = await makeRandomFile(server.root, 'f.bin', 8 * 1024 * 1024)
const work = await mkdtemp(join(tmpdir(), 'fpp-v6-'))
t.teardown(() => rm(work, { recursive: true, force: true }))

t.test('curl -g ftp://[::1]:PORT/ through the proxy to an IPv4-only vsftpd', async (t) => {
  const p = await startProxy(['--listen', '[::1]:0', '--upstream', '127.0.0.1:23700', '--passive-ports', '23750-23759'])
  t.teardown(() => p.close())
  const v6 = p.proxy.addresses().find((a) => a.host === '::1')!
  const out = join(work, 'v6.bin')
  const r = await runProcess('curl', ['-q', '-sS', '-g', '-o', out, `ftp://[::1]:${v6.port}/f.bin`], { timeoutMs: 30_000 })
  t.equal(r.code, 0, r.stderr)
  t.equal(await sha256File(out), file.sha256, 'sha256 equal')
  t.ok(p.logs.some((l) => l.msg === 'passive reply rewritten' && String(l.toClient).startsWith('229 ')), 'the client got a 229')
  const c = await RawFtp.connect('::1', v6.port)
  t.teardown(() => c.close())
  await c.login()
  const pasv = await c.cmd('PASV')
  t.equal(pasv.code, 425, 'PASV from an IPv6 client: 425 without an IPv4 advertise address')
  t.match(pasv.text, /cannot be named in a 227 reply; use EPSV/)
  const p4 = await startProxy(['--listen', '[::1]:0', '--upstream', '127.0.0.1:23700', '--passive-ports', '23760-23769', '--advertise-address', '127.0.0.1'])
  t.teardown(() => p4.close())
  const c4 = await RawFtp.connect('::1', p4.proxy.addresses().find((a) => a.host === '::1')!.port)
  t.teardown(() => c4.close())
  await c4.login()
  const r4 = await c4.cmd('PASV')
  t.equal(r4.code, 227, 'with an IPv4 advertise address configured, a 227')
  t.match(r4.text, /\(127,0,0,1,/)
})

t.test('the idle timeout spares a long transfer and closes an idle session with 421', async (t) => {
  const p = await startProxy(['--upstream', '127.0.0.1:23700', '--passive-ports', '23770-23779', '--idle-timeout', '1s'])
  t.teardown(() => p.close())
  // A client that reads its data slowly: one chunk every 40 ms keeps the transfer running for
  // seconds with the control connection silent, several times the idle timeout.
  const slow = await RawFtp.connect(p.host, p.port)
  t.teardown(() => slow.close())
  await slow.login()
  const ep = pasvEndpoint((await slow.cmd('PASV')).text)
  const started = Date.now()
  const data = new Promise<Buffer>((resolve) => {
    const s = net.connect(ep.port, ep.host)
    const chunks: Buffer[] = []
    s.on('data', (d: Buffer) => {
      chunks.push(d)
      s.pause()
      setTimeout(() => s.resume(), 40)
    })
    s.on('end', () => resolve(Buffer.concat(chunks)))
  })
  t.equal((await slow.cmd('RETR f.bin')).code, 226, 'the transfer completes')
  const got = await data
  t.ok(Date.now() - started > 2500, `the transfer outlasted the idle timeout (${Date.now() - started} ms)`)
  t.equal(createHash('sha256').update(got).digest('hex'), file.sha256, 'with equal sha256')
  t.equal((await slow.cmd('NOOP')).code, 200, 'and its session is still open')
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  const idleStart = Date.now()
  const bye = await c.reply(5000)
  t.equal(bye?.code, 421, 'an idle session gets 421')
  t.match(bye?.text, /Idle timeout/)
  t.ok(Date.now() - idleStart < 3000, 'about when the timeout says')
  t.equal(await c.reply(2000), null, 'and is closed')
})
