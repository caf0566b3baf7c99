// Session limits and access control, through the real proxy. Ports: pools in 27000-27049.
import t from 'tap'
import { startFtpServer } from '../../src/demo/ftp-server.js'
import { metricValue, startProxy } from '../fixtures/proxy.js'
import { RawFtp } from '../fixtures/raw-ftp.js'

async function greeting(host: string, port: number, localAddress?: string): Promise<{ code: number | undefined; text: string | undefined; c: RawFtp }> {
  const c = await RawFtp.connect(host, port, localAddress)
  const r = await c.reply()
  return { code: r?.code, text: r?.text, c }
}

t.test('limits: in total and per client IP; over them a 421, counted', async (t) => {
  const server = await startFtpServer()
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '27000-27004', '--max-sessions', '3', '--max-sessions-per-client', '2'])
  t.teardown(() => p.close())
  const open: RawFtp[] = []
  t.teardown(() => open.forEach((c) => c.close()))
  for (const from of ['127.0.0.1', '127.0.0.1']) {
    const g = await greeting(p.host, p.port, from)
    open.push(g.c)
    t.equal(g.code, 220)
  }
  const third = await greeting(p.host, p.port, '127.0.0.1')
  open.push(third.c)
  t.equal(third.code, 421, 'a third session from one IP is refused')
  t.match(third.text, /at most 2 sessions from your address/)
  const other = await greeting(p.host, p.port, '127.0.0.2')
  open.push(other.c)
  t.equal(other.code, 220, 'another IP is still served')
  const fourth = await greeting(p.host, p.port, '127.0.0.3')
  open.push(fourth.c)
  t.equal(fourth.code, 421, 'past the total, refused')
  t.match(fourth.text, /at most 3 sessions in total/)
  t.equal(await metricValue(p, 'ftp_proxy_sessions_rejected_total', { reason: 'limit' }), 2)
  open[0]!.close()
  const end = Date.now() + 5000
  let again = await greeting(p.host, p.port, '127.0.0.1')
  while (again.code !== 220 && Date.now() < end) {
    again.c.close()
    await new Promise((r) => setTimeout(r, 50))
    again = await greeting(p.host, p.port, '127.0.0.1')
  }
  open.push(again.c)
  t.equal(again.code, 220, 'a closed session frees its place')
})

t.test('--allow-clients: others get 421 before anything reaches the server', async (t) => {
  const server = await startFtpServer()
  t.teardown(() => server.close())
  const p = await startProxy(['--listen', '[::1]:0', '--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '27010-27014', '--allow-clients', '127.0.0.2/32,::1/128'])
  t.teardown(() => p.close())
  const v6 = p.proxy.addresses().find((a) => a.host === '::1')!
  const denied = await greeting(p.host, p.port, '127.0.0.1')
  t.teardown(() => denied.c.close())
  t.equal(denied.code, 421)
  t.match(denied.text, /not allowed/)
  const allowed4 = await greeting(p.host, p.port, '127.0.0.2')
  t.teardown(() => allowed4.c.close())
  t.equal(allowed4.code, 220, 'an IPv4 client in the list')
  const allowed6 = await greeting('::1', v6.port)
  t.teardown(() => allowed6.c.close())
  t.equal(allowed6.code, 220, 'an IPv6 client in the list')
  t.equal(await metricValue(p, 'ftp_proxy_sessions_rejected_total', { reason: 'acl' }), 1)
  t.equal(await metricValue(p, 'ftp_proxy_sessions_total'), 2, 'the refused client never became a session')
  t.ok(p.logs.some((l) => l.msg === 'client not in --allow-clients; refused' && l.client === '127.0.0.1'))
})

t.test('a server that accepts but never greets: 421 after --greeting-timeout', async (t) => {
  const net = await import('node:net')
  const silent = net.createServer((s) => s.on('error', () => {}))
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
  t.teardown(() => silent.close())
  const port = (silent.address() as import('node:net').AddressInfo).port
  const p = await startProxy(['--upstream', `127.0.0.1:${port}`, '--passive-ports', '27020-27024', '--greeting-timeout', '500ms'])
  t.teardown(() => p.close())
  const started = Date.now()
  const g = await greeting(p.host, p.port)
  t.teardown(() => g.c.close())
  t.equal(g.code, 421)
  t.match(g.text, /no greeting within 0.5 s/)
  t.ok(Date.now() - started < 3000)
  const end = Date.now() + 3000
  while (p.proxy.sessionCount > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20))
  t.equal(p.proxy.sessionCount, 0, 'the session is released')
})
