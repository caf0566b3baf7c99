// At the most verbose level the password is nowhere in the log, while the session's USER, its
// rewrite and its transfer are (pino's sink pattern, after pino test/redact.test.js).
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { startFtpServer } from '../../src/demo/ftp-server.js'
import { startProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp, readAll } from '../fixtures/raw-ftp.js'

const PASSWORD = 'hunter2-Sesame-9f3b'

t.test('PASS never reaches the log', async (t) => {
  const server = await startFtpServer({ files: { 'a.txt': randomBytes(1000) }, advertiseAddress: '127.0.0.99' })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '22350-22354'], 'trace')
  t.teardown(() => p.close())
  const c = await RawFtp.connect(p.host, p.port)
  await c.login('alice', PASSWORD)
  // A password sent again later, and one with the Telnet prefix, are hidden too.
  t.equal((await c.cmd(`PASS ${PASSWORD}`)).code >= 200, true)
  const ep = pasvEndpoint((await c.cmd('PASV')).text)
  const data = readAll(ep.host, ep.port)
  t.equal((await c.cmd('RETR a.txt')).code, 226)
  t.equal((await data).length, 1000)
  t.equal((await c.cmd('QUIT')).code, 221)
  c.close()
  await new Promise((r) => setTimeout(r, 100))
  const raw = p.rawLog()
  t.notMatch(raw, PASSWORD, 'the password appears nowhere')
  t.notMatch(raw, Buffer.from(PASSWORD).toString('base64'), 'not even encoded')
  const logs = p.logs
  t.ok(logs.some((l) => (l.cmd as { verb?: string; arg?: string } | undefined)?.verb === 'USER' && (l.cmd as { arg: string }).arg === 'alice'), 'USER logged')
  t.ok(logs.some((l) => (l.cmd as { verb?: string; arg?: string } | undefined)?.verb === 'PASS' && (l.cmd as { arg: string }).arg === '****'), 'PASS logged masked')
  const rewrite = logs.find((l) => l.msg === 'passive reply rewritten')
  t.match(rewrite, { sid: 's1', client: '127.0.0.1', advertised: /^127\.0\.0\.99:\d+$/, advertisedClass: 'loopback', toClient: /^227 Entering Passive Mode \(127,0,0,1,/ })
  const transfer = logs.find((l) => l.msg === 'transfer finished')
  t.match(transfer, { user: 'alice', command: 'RETR', path: 'a.txt', direction: 'download', bytes: 1000, result: 'ok' })
  t.match(logs.find((l) => l.msg === 'session opened'), { sid: 's1', client: '127.0.0.1', upstreamLocalPort: Number })
  t.match(logs.find((l) => l.msg === 'session closed'), { sid: 's1', upstreamLocalPort: Number })
})

t.test('a failed data connection gives one line with the targets, the reason and a hint', async (t) => {
  const server = await startFtpServer({ advertiseAddress: '127.0.0.99', dataListen: 'never' })
  t.teardown(() => server.close())
  // Loopback listed, so the advertised 127.0.0.99 is dialled too (by default it is not).
  const p = await startProxy(
    ['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '22355-22359', '--upstream-data-networks', '127.0.0.0/8'],
    'info',
  )
  t.teardown(() => p.close())
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  t.equal((await c.cmd('PASV')).code, 425)
  const lines = p.logs.filter((l) => l.msg === 'data connection failed')
  t.equal(lines.length, 1, 'one line per failure')
  const line = lines[0]!
  t.match(line, {
    level: 40,
    sid: 's1',
    reason: 'upstream_refused',
    fromServer: /^227 Entering Passive Mode \(127,0,0,99,/,
    advertised: /^127\.0\.0\.99:\d+$/,
    advertisedClass: 'loopback',
  })
  const targets = line.targets as Array<{ host: string; port: number; kind: string; error: string }>
  t.same(
    targets.map((x) => [x.kind, x.host, x.error]),
    [
      ['control', '127.0.0.1', 'ECONNREFUSED'],
      ['advertised', '127.0.0.99', 'ECONNREFUSED'],
    ],
    'every target dialled, with its error',
  )
  t.match(line.hint, /advertised loopback address 127\.0\.0\.99 that differs from its control address 127\.0\.0\.1/)
  t.match(line.hint, /vsftpd pasv_address, ProFTPD MasqueradeAddress, pure-ftpd -P/)
  t.match(line.hint, /--upstream-data-address/)
})
