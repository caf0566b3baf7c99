// Hostile review of 5f3b1bf~1: what a client or a server can do to a passive data connection.
// In-process proxy, real sockets on loopback, scripted servers.
//
// - defect 6: one byte every 1.5 s on a data connection with no transfer command kept the pool
//   port and the session forever (idle, data-idle and accept timeouts 2 s: after 12 s still
//   open; here the idle timeout is 4 s, so that the data connection's end is seen as its own). Fixed: a data connection with no transfer command ends after --data-accept-timeout,
//   and does not count as a running transfer (the idle timeout then closes the session).
// - defect 7: 2000 connections from 127.0.0.2 to a leased port wrote 2000 warn lines. Fixed: one
//   warning per lease; ftp_proxy_foreign_data_connections_total still counts every one.
// - defect 9: a 229 (or 227) naming port 22 got `425 ... (see --upstream-data-networks)`; the
//   setting that allows it is --upstream-data-low-ports. Fixed: the 425 names the setting of the
//   rule that refused the address.
//
// Ports: scripted servers 28210-28219, pools 28320-28339.
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import t from 'tap'
import { metricValue, startProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp } from '../fixtures/raw-ftp.js'
import { sha, startFaultServer, waitFor } from './helpers.js'
import { logLines, readData } from './review-helpers.js'

t.setTimeout(120_000)

const FILE = randomBytes(200_000)
const files = { 'f.bin': FILE }

t.test('defect 6: a data connection trickling a byte every 1.5 s with no transfer command', async (t) => {
  const server = await startFaultServer({ port: 28210, files })
  t.teardown(() => server.close())
  const p = await startProxy([
    '--upstream', `127.0.0.1:${server.port}`,
    '--passive-ports', '28320-28323',
    // Longer than the accept timeout, so the data connection's end is the lease's own doing.
    '--idle-timeout', '4s',
    '--data-idle-timeout', '2s',
    '--data-accept-timeout', '2s',
  ])
  t.teardown(() => p.close())
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  const pasv = await c.cmd('PASV')
  t.equal(pasv.code, 227, 'PASV answered 227')
  const ep = pasvEndpoint(pasv.text)

  const s = net.connect({ host: ep.host, port: ep.port })
  s.on('error', () => {})
  t.teardown(() => s.destroy())
  await new Promise((r) => s.once('connect', r))
  const connectedAt = Date.now()
  let closedAt: number | null = null
  s.once('close', () => (closedAt = Date.now()))
  // One byte every 1.5 s for 12 s at most (8 bytes), while the proxy keeps the connection.
  let sent = 0
  let controlReply: string | null = null
  const closedControl = c.reply(14_000).then(
    (r) => (controlReply = r === null ? 'closed' : r.text),
    () => null,
  )
  while (closedAt === null && Date.now() - connectedAt < 12_000) {
    if (s.writable) {
      s.write('x')
      sent++
    }
    await waitFor(() => closedAt !== null, 1500)
  }
  const heldFor = ((closedAt ?? Date.now()) - connectedAt) / 1000
  t.ok(closedAt !== null, `the proxy ends the data connection (${closedAt === null ? `still open after ${heldFor.toFixed(1)} s, ${sent} bytes sent` : `after ${heldFor.toFixed(1)} s, ${sent} bytes sent`})`)
  t.ok(heldFor <= 2 + 3, `within --data-accept-timeout (2 s) + 3 s (${heldFor.toFixed(1)} s)`)
  // Within 1 s: less than --data-idle-timeout after the last byte of a trickle that ran 12 s.
  await waitFor(() => p.proxy.pool.inUse === 0, 1000)
  t.equal(p.proxy.pool.inUse, 0, 'its pool port is released within 1 s of that')
  t.equal(await metricValue(p, 'ftp_proxy_port_pool_in_use'), 0, 'ftp_proxy_port_pool_in_use is 0')
  t.equal(await metricValue(p, 'ftp_proxy_data_connection_failures_total', { reason: 'client_timeout' }), 1, 'counted as a failure, reason client_timeout')
  await closedControl
  t.match(controlReply ?? '', /^421 Idle timeout/, `then the idle timeout (4 s) closes the session with 421 (${controlReply ?? 'no reply within 14 s'})`)
  await waitFor(() => p.proxy.sessionCount === 0, 5000)
  t.equal(p.proxy.sessionCount, 0, 'no session left')
  t.equal(await metricValue(p, 'ftp_proxy_sessions_active'), 0, 'ftp_proxy_sessions_active is 0')
})

const FOREIGN = 2000

t.test(`defect 7: ${FOREIGN} connections from 127.0.0.2 to a leased port: one warning, every one counted`, async (t) => {
  const server = await startFaultServer({ port: 28211, files })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '28324-28327'], 'debug')
  t.teardown(() => p.close())
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  const pasv = await c.cmd('PASV')
  t.equal(pasv.code, 227, 'PASV answered 227')
  const ep = pasvEndpoint(pasv.text)

  // One at a time, each until the proxy has closed it (bounded: 5 s each at most).
  let refused = 0
  for (let i = 0; i < FOREIGN; i++) {
    const closed = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: ep.host, port: ep.port, localAddress: '127.0.0.2' })
      s.on('error', () => {})
      const timer = setTimeout(() => {
        s.destroy()
        resolve(false)
      }, 5000)
      s.once('close', () => {
        clearTimeout(timer)
        resolve(true)
      })
    })
    if (closed) refused++
  }
  t.equal(refused, FOREIGN, `the proxy closes every foreign connection (${refused} of ${FOREIGN})`)
  const warn = logLines(p.logs, 40, 'data connection from a foreign address refused')
  t.equal(warn, 1, `one warn line 'data connection from a foreign address refused' (got ${warn})`)
  t.equal(await metricValue(p, 'ftp_proxy_foreign_data_connections_total'), FOREIGN, `ftp_proxy_foreign_data_connections_total is ${FOREIGN}`)

  // The client's own data connection still works.
  const data = readData(ep.host, ep.port)
  t.equal((await c.cmd('RETR f.bin')).code, 226, 'the client then RETRs through the same port: 226')
  t.equal(sha((await data).bytes), sha(FILE), 'equal bytes (sha256)')
  await c.cmd('QUIT')
})

t.test('defect 9: a passive reply naming port 22: the 425 names --upstream-data-low-ports', async (t) => {
  const server = await startFaultServer({
    port: 28212,
    files,
    onCommand: (cmd, s) => {
      if (cmd.verb === 'EPSV') return void s.write('229 Entering Extended Passive Mode (|||22|)')
      if (cmd.verb === 'PASV') return void s.write('227 Entering Passive Mode (127,0,0,1,0,22).')
      return 'default'
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '28328-28331'])
  t.teardown(() => p.close())
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()

  for (const verb of ['EPSV', 'PASV']) {
    const r = await c.cmd(verb)
    t.equal(r.code, 425, `${verb} naming port 22 is answered 425 (${r.text})`)
    t.match(r.text, /--upstream-data-low-ports/, `${verb}: the 425 names --upstream-data-low-ports`)
    t.notMatch(r.text, /--upstream-data-networks/, `${verb}: the 425 does not send the operator to --upstream-data-networks`)
  }
  t.equal(await metricValue(p, 'ftp_proxy_data_connection_failures_total', { reason: 'data_address_refused' }), 2, 'both counted as data_address_refused')
  await c.cmd('QUIT')
})
