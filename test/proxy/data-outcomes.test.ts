// Data-connection outcomes through the real proxy, against the scriptable server double for
// the misbehaviour no real server produces on demand. Ports: pools in 22300-22349.
import { createHash, randomBytes } from 'node:crypto'
import net from 'node:net'
import t, { type Test } from 'tap'
import { startFtpServer } from '../../src/demo/ftp-server.js'
import { metricValue, startProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp, readAll } from '../fixtures/raw-ftp.js'

const FILE = randomBytes(256 * 1024)
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

async function setup(t: Test, serverOpts: Parameters<typeof startFtpServer>[0], args: string[]) {
  const server = await startFtpServer({ files: { 'f.bin': FILE }, ...serverOpts })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, ...args])
  t.teardown(() => p.close())
  const open = async (): Promise<RawFtp> => {
    const c = await RawFtp.connect(p.host, p.port)
    t.teardown(() => c.close())
    await c.login()
    return c
  }
  return { server, p, open }
}

t.test('no reachable data endpoint: 425 with the reason, and the proxy keeps serving', async (t) => {
  // Loopback listed, so the advertised 127.0.0.99 is dialled too (by default it is not).
  const { p, open } = await setup(t, { advertiseAddress: '127.0.0.99', dataListen: 'never' }, ['--passive-ports', '22300-22304', '--upstream-data-networks', '127.0.0.0/8'])
  const c = await open()
  const r = await c.cmd('PASV')
  t.equal(r.code, 425)
  t.match(r.text, /did not answer/)
  t.match(r.text, /ECONNREFUSED/)
  // Both candidates were tried: the control peer, then the advertised address.
  const fail = p.logs.find((l) => l.msg === 'data connection failed')
  t.equal(fail?.reason, 'upstream_refused')
  t.same((fail?.targets as Array<{ host: string }>).map((x) => x.host), ['127.0.0.1', '127.0.0.99'])
  t.equal(await metricValue(p, 'ftp_proxy_data_connection_failures_total', { reason: 'upstream_refused' }), 1)
  t.equal(p.proxy.pool.inUse, 0)
  t.equal((await c.cmd('NOOP')).code, 200, 'the session goes on')
  const other = await open()
  t.equal((await other.cmd('NOOP')).code, 200, 'another session is served')
})

t.test('pool exhaustion: 425, the session goes on, and works once a port is free', async (t) => {
  const { p, open } = await setup(t, { advertiseAddress: '127.0.0.99' }, ['--passive-ports', '22310-22311'])
  const a = await open()
  const b = await open()
  const c = await open()
  t.equal((await a.cmd('PASV')).code, 227)
  t.equal((await b.cmd('PASV')).code, 227)
  t.equal(p.proxy.pool.inUse, 2)
  const r = await c.cmd('PASV')
  t.equal(r.code, 425)
  t.match(r.text, /passive port/)
  t.equal(await metricValue(p, 'ftp_proxy_data_connection_failures_total', { reason: 'pool_exhausted' }), 1)
  t.equal((await c.cmd('NOOP')).code, 200)
  a.close()
  await waitFor(() => p.proxy.pool.inUse === 1)
  const again = await c.cmd('PASV')
  t.equal(again.code, 227)
  const ep = pasvEndpoint(again.text)
  t.ok(ep.port >= 22310 && ep.port <= 22311, 'a port of the pool, never outside it')
  const data = readAll(ep.host, ep.port)
  t.equal((await c.cmd('RETR f.bin')).code, 226)
  t.equal(sha(await data), sha(FILE))
  t.equal(await metricValue(p, 'ftp_proxy_data_connections_cancelled_total', { reason: 'closed' }), 1, "a's lease ended with its session")
})

t.test('a data connection from another IP is refused; the real client still gets its data', async (t) => {
  const { p, open } = await setup(t, {}, ['--passive-ports', '22320-22321'])
  const c = await open()
  const ep = pasvEndpoint((await c.cmd('PASV')).text)
  const thief = net.connect({ host: ep.host, port: ep.port, localAddress: '127.0.0.2' })
  const stolen: Buffer[] = []
  thief.on('data', (d: Buffer) => stolen.push(d))
  thief.on('error', () => {})
  await new Promise((r) => thief.on('close', r))
  t.equal(Buffer.concat(stolen).length, 0, 'the thief got nothing')
  t.equal(await metricValue(p, 'ftp_proxy_foreign_data_connections_total'), 1)
  const data = readAll(ep.host, ep.port)
  t.equal((await c.cmd('RETR f.bin')).code, 226)
  t.equal(sha(await data), sha(FILE))
  await waitFor(() => p.proxy.pool.inUse === 0)
  t.equal(await metricValue(p, 'ftp_proxy_data_connections_total', { result: 'ok' }), 1)
})

t.test('bad passive reply, client timeout, replaced and refused leases', async (t) => {
  const { p, open } = await setup(
    t,
    { pasvReply: (real) => (real.port % 2 === 0 ? '227 Entering Passive Mode (999,0,0,1,4,1)' : '227 Entering Passive Mode (999,0,0,1,4,2)') },
    ['--passive-ports', '22330-22339', '--data-accept-timeout', '300ms'],
  )
  const c = await open()
  const bad = await c.cmd('PASV')
  t.equal(bad.code, 425)
  t.match(bad.text, /passive reply is invalid/)
  t.equal(await metricValue(p, 'ftp_proxy_data_connection_failures_total', { reason: 'bad_passive_reply' }), 1)
  const good = await setup(t, {}, ['--passive-ports', '22340-22349', '--data-accept-timeout', '300ms'])
  const d = await good.open()
  t.equal((await d.cmd('PASV')).code, 227)
  t.equal((await d.cmd('PASV')).code, 227)
  t.equal(await metricValue(good.p, 'ftp_proxy_data_connections_cancelled_total', { reason: 'replaced' }), 1)
  await waitFor(async () => (await metricValue(good.p, 'ftp_proxy_data_connection_failures_total', { reason: 'client_timeout' })) === 1)
  t.equal(good.p.proxy.pool.inUse, 0, 'the timed-out port is back')
  t.equal((await d.cmd('PASV')).code, 227)
  t.equal((await d.cmd('RETR missing.bin')).code, 550)
  t.equal(await metricValue(good.p, 'ftp_proxy_data_connections_cancelled_total', { reason: 'refused' }), 1)
  await waitFor(() => good.p.proxy.pool.inUse === 0)
  const total = await metricValue(good.p, 'ftp_proxy_data_connections_total', { result: 'cancelled' })
  t.equal(total, 2)
})

async function waitFor(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}
