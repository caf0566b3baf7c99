// Client commands the proxy answers itself or translates, and servers with odd passive habits,
// through the real proxy against the scriptable double. Ports: pools in 22400-22449.
import { createHash, randomBytes } from 'node:crypto'
import net from 'node:net'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { startFtpServer } from '../../src/demo/ftp-server.js'
import { metricValue, startProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp, readAll } from '../fixtures/raw-ftp.js'

const FILE = randomBytes(300_000)
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
let poolBase = 22400

async function setup(t: Test, serverOpts: Parameters<typeof startFtpServer>[0] = {}, args: string[] = []) {
  const server = await startFtpServer({ files: { 'f.bin': FILE }, advertiseAddress: '127.0.0.99', ...serverOpts })
  t.teardown(() => server.close())
  const pool = `${poolBase}-${poolBase + 4}`
  poolBase += 5
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', pool, ...args])
  t.teardown(() => p.close())
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  return { server, p, c }
}

/** A listening socket standing for the client's active-mode data port. */
async function activeListener(t: Test): Promise<{ port: number; received: Promise<Buffer> }> {
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  const received = (async () => {
    const [socket] = (await once(server, 'connection')) as [net.Socket]
    const chunks: Buffer[] = []
    socket.on('data', (d: Buffer) => chunks.push(d))
    await once(socket, 'end')
    socket.end()
    return Buffer.concat(chunks)
  })()
  return { port: (server.address() as net.AddressInfo).port, received }
}

t.test('active mode (default passive): PORT and EPRT become passive toward the server', async (t) => {
  const { server, p, c } = await setup(t)
  for (const verb of ['PORT', 'EPRT']) {
    const l = await activeListener(t)
    const arg = verb === 'PORT' ? `127,0,0,1,${l.port >> 8},${l.port & 255}` : `|1|127.0.0.1|${l.port}|`
    const r = await c.cmd(`${verb} ${arg}`)
    t.equal(r.code, 200, `${verb} accepted`)
    t.equal((await c.cmd('RETR f.bin')).code, 226)
    t.equal(sha(await l.received), sha(FILE), `${verb}: identical bytes`)
  }
  t.notOk(server.commands.some((x) => /^(PORT|EPRT)/.test(x)), 'the server saw no PORT/EPRT')
  t.equal(server.commands.filter((x) => x === 'PASV').length, 2, 'it saw PASV instead')
  // A lease ends once both legs have closed, which may be just after the 226.
  const end = Date.now() + 5000
  while ((await metricValue(p, 'ftp_proxy_data_connections_total', { result: 'ok' })) < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 20))
  t.equal(await metricValue(p, 'ftp_proxy_data_connections_total', { result: 'ok' }), 2)
})

t.test('bounce attempts, malformed PORT/EPRT, LPSV/LPRT: refused, counted, the session goes on', async (t) => {
  const { server, p, c } = await setup(t)
  const table: Array<[string, number, string]> = [
    ['PORT 127,0,0,2,117,48', 504, 'bounce'], // another address
    ['PORT 127,0,0,1,0,21', 504, 'bounce'], // a privileged port
    ['EPRT |1|127.0.0.2|30000|', 504, 'bounce'],
    ['EPRT |1|127.0.0.1|21|', 504, 'bounce'],
    ['PORT 127,0,0,1,300,1', 501, 'malformed'],
    ['PORT 127,0,0,1', 501, 'malformed'],
    ['EPRT |9|127.0.0.1|30000|', 501, 'malformed'],
    ['EPRT garbage', 501, 'malformed'],
    ['LPSV', 502, 'unsupported'],
    ['LPRT 4,4,127,0,0,1,2,117,48', 502, 'unsupported'],
  ]
  for (const [cmd, code] of table) t.equal((await c.cmd(cmd)).code, code, cmd)
  for (const reason of ['bounce', 'malformed', 'unsupported']) {
    t.equal(await metricValue(p, 'ftp_proxy_commands_refused_total', { reason }), table.filter((r) => r[2] === reason).length, reason)
  }
  t.notOk(server.commands.some((x) => /^(PORT|EPRT|LPSV|LPRT)/.test(x)), 'none reached the server')
  t.ok(p.logs.some((l) => l.msg === 'command refused' && l.reason === 'bounce'), 'logged')
  const ep = pasvEndpoint((await c.cmd('PASV')).text)
  const data = readAll(ep.host, ep.port)
  t.equal((await c.cmd('RETR f.bin')).code, 226, 'the session goes on')
  t.equal(sha(await data), sha(FILE))
})

t.test('EPSV ALL: afterwards PASV, PORT and EPRT are refused; EPSV works', async (t) => {
  const { p, c } = await setup(t)
  t.equal((await c.cmd('EPSV ALL')).code, 200)
  t.equal((await c.cmd('PASV')).code, 503)
  t.equal((await c.cmd('PORT 127,0,0,1,117,48')).code, 503)
  t.equal((await c.cmd('EPRT |1|127.0.0.1|30000|')).code, 503)
  t.equal(await metricValue(p, 'ftp_proxy_commands_refused_total', { reason: 'epsv_all' }), 3)
  const r = await c.cmd('EPSV')
  t.equal(r.code, 229)
  const port = Number(/\|\|\|(\d+)\|/.exec(r.text)?.[1])
  const data = readAll('127.0.0.1', port)
  t.equal((await c.cmd('RETR f.bin')).code, 226)
  t.equal(sha(await data), sha(FILE))
})

t.test('--active-mode deny: PORT and EPRT get 502', async (t) => {
  const { server, p, c } = await setup(t, {}, ['--active-mode', 'deny'])
  t.equal((await c.cmd('PORT 127,0,0,1,117,48')).code, 502)
  t.equal((await c.cmd('EPRT |1|127.0.0.1|30000|')).code, 502)
  t.equal(await metricValue(p, 'ftp_proxy_commands_refused_total', { reason: 'unsupported' }), 2)
  t.notOk(server.commands.some((x) => /^(PORT|EPRT|PASV)/.test(x)))
})

t.test('odd servers: each client gets the form it asked for', async (t) => {
  const cases: Array<[string, Parameters<typeof startFtpServer>[0]]> = [
    ['a server that answers PASV with 229', { pasvReply: (real) => `229 Extended Passive mode OK (|||${real.port}|)` }],
    ['a server that answers EPSV with 227', { epsvReply: (real) => `227 Entering Passive Mode (127,0,0,99,${real.port >> 8},${real.port & 255})` }],
    ['a server without EPSV', { epsvReply: 'unsupported' }],
    ['a multi-line 227 with = and no parentheses', { pasvReply: (real) => `227-Entering Passive Mode\r\n227 =127,0,0,99,${real.port >> 8},${real.port & 255}` }],
  ]
  for (const [name, opts] of cases) {
    const { server, c } = await setup(t, opts)
    for (const verb of ['PASV', 'EPSV']) {
      const r = await c.cmd(verb)
      t.equal(r.code, verb === 'PASV' ? 227 : 229, `${name}: ${verb} gets ${verb === 'PASV' ? 227 : 229}`)
      const port = verb === 'PASV' ? pasvEndpoint(r.text).port : Number(/\(\|\|\|(\d+)\|\)/.exec(r.text)?.[1])
      const data = readAll('127.0.0.1', port)
      t.equal((await c.cmd('RETR f.bin')).code, 226, `${name}: ${verb} RETR`)
      t.equal(sha(await data), sha(FILE), `${name}: ${verb} identical bytes`)
    }
    if (opts?.epsvReply === 'unsupported') {
      t.equal(server.commands.filter((x) => x === 'EPSV').length, 1, 'EPSV tried once, then PASV')
    }
  }
})

t.test('IPv6 client: EPSV works, PASV gets 425 without an IPv4 advertise address', async (t) => {
  const server = await startFtpServer({ files: { 'f.bin': FILE }, advertiseAddress: '127.0.0.99' })
  t.teardown(() => server.close())
  const p = await startProxy(['--listen', '[::1]:0', '--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '22440-22444'])
  t.teardown(() => p.close())
  const v6 = p.proxy.addresses().find((a) => a.host === '::1')!
  const c = await RawFtp.connect('::1', v6.port)
  t.teardown(() => c.close())
  await c.login()
  const r = await c.cmd('EPSV')
  t.equal(r.code, 229)
  const port = Number(/\|\|\|(\d+)\|/.exec(r.text)?.[1])
  const data = readAll('::1', port)
  t.equal((await c.cmd('RETR f.bin')).code, 226)
  t.equal(sha(await data), sha(FILE))
  const pasv = await c.cmd('PASV')
  t.equal(pasv.code, 425)
  t.match(pasv.text, /use EPSV/)
})

t.test('EPRT naming the unspecified address (lftp on loopback) means the client itself', async (t) => {
  const { c } = await setup(t)
  const l = await activeListener(t)
  t.equal((await c.cmd(`EPRT |1|0.0.0.0|${l.port}|`)).code, 200)
  t.equal((await c.cmd('RETR f.bin')).code, 226)
  t.equal(sha(await l.received), sha(FILE))
})

t.test('--active-mode relay: the server connects to a pool port, the proxy dials the client', async (t) => {
  const { server, p, c } = await setup(t, {}, ['--active-mode', 'relay'])
  for (const verb of ['PORT', 'EPRT']) {
    const l = await activeListener(t)
    const arg = verb === 'PORT' ? `127,0,0,1,${l.port >> 8},${l.port & 255}` : `|1|127.0.0.1|${l.port}|`
    t.equal((await c.cmd(`${verb} ${arg}`)).code, 200, `${verb} accepted`)
    t.equal((await c.cmd('RETR f.bin')).code, 226)
    t.equal(sha(await l.received), sha(FILE), `${verb}: identical bytes`)
  }
  const ports = server.commands.filter((x) => x.startsWith('PORT '))
  t.equal(ports.length, 2, 'the server got PORT both times')
  for (const x of ports) {
    const n = x.slice(5).split(',').map(Number)
    const port = n[4]! * 256 + n[5]!
    t.ok(port >= 22400 && port < 22500, `naming a pool port of the proxy (${port})`)
  }
  t.notOk(server.commands.some((x) => x.startsWith('PASV')))
  const end = Date.now() + 5000
  while ((await metricValue(p, 'ftp_proxy_data_connections_total', { result: 'ok' })) < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 20))
  t.equal(await metricValue(p, 'ftp_proxy_data_connections_total', { result: 'ok' }), 2)
  t.equal(p.proxy.pool.inUse, 0)
})
