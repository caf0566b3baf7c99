// The FTP server is down when clients connect: each gets a 421 that names the reason, counted as
// ftp_proxy_sessions_rejected_total{reason="upstream_unreachable"}; nothing is held afterwards,
// and once the server is up the next client is served. Ports: 26600-26699.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { startFtpServer } from '../../src/demo/ftp-server.js'
import { metricValue, startProxy } from '../fixtures/proxy.js'
import { assertReleased, endsClean, openFds, RawSocket, sleep, waitFor } from './helpers.js'

t.setTimeout(60_000)
const SERVER_PORT = 26600 // nothing listens here until the end of the test
const FILE = randomBytes(300_000)

t.test('server down: 421 with ECONNREFUSED, counted, released; served once the server is up', async (t) => {
  const p = await startProxy(['--upstream', `127.0.0.1:${SERVER_PORT}`, '--passive-ports', '26610-26619', '--connect-timeout', '2s'])
  t.teardown(() => p.close())
  // A first refused client before the baseline: the first connect attempt may open descriptors
  // (libuv, the readiness probe) that stay for the life of the process.
  const warm = await RawSocket.connect(p.host, p.port)
  await warm.until('\n')
  warm.close()
  await sleep(100)
  const fds = openFds()

  const N = 20
  for (let i = 0; i < N; i++) {
    const c = await RawSocket.connect(p.host, p.port)
    const got = await c.until(/\r\n/, 5000)
    t.ok(got, `client ${i}: a reply came`)
    if (i === 0) {
      t.equal(
        c.received.toString('latin1'),
        '421 Service not available: the proxy cannot reach the FTP server (ECONNREFUSED).\r\n',
        'the 421 names the reason',
      )
      // The proxy closes after its 421 (it sends FIN); the client sees the end of the connection.
      t.ok(await waitFor(() => c.closed, 5000), 'the proxy closes the control connection')
    }
    c.close()
  }
  t.equal(await metricValue(p, 'ftp_proxy_sessions_rejected_total', { reason: 'upstream_unreachable' }), N + 1, 'every refused client counted, warm-up included')
  t.equal(await metricValue(p, 'ftp_proxy_sessions_total'), 0, 'no session was opened')
  const warned = p.logs.filter((l) => l.msg === 'FTP server unreachable; session refused')
  t.equal(warned.length, N + 1, 'one warning per refused client')
  t.equal(warned[0]?.error, 'ECONNREFUSED', 'the warning names the error')
  t.equal(warned[0]?.upstream, `127.0.0.1:${SERVER_PORT}`, 'and the server address')
  await assertReleased(t, p, fds, 'after the refused clients')

  // The server comes up: the next client is served, with nothing more held afterwards.
  const server = await startFtpServer({ port: SERVER_PORT, files: { 'f.bin': FILE } })
  t.teardown(() => server.close())
  await endsClean(t, p, openFds(), 'f.bin', FILE)
})

t.test('server down: refused clients do not use up --max-sessions', async (t) => {
  // Each refused client is counted in the open sessions from accept to its socket's close: the
  // count must come back down, or after --max-sessions refusals the proxy refuses everyone.
  const port = SERVER_PORT + 1
  const p = await startProxy(['--upstream', `127.0.0.1:${port}`, '--passive-ports', '26620-26629', '--max-sessions', '3'])
  t.teardown(() => p.close())
  for (let i = 0; i < 3; i++) {
    const c = await RawSocket.connect(p.host, p.port)
    t.ok(await c.until(/^421 Service not available: the proxy cannot reach the FTP server/), `client ${i}: 421 server unreachable`)
    await waitFor(() => c.closed, 5000)
    c.close()
  }
  await sleep(200)
  const server = await startFtpServer({ port, files: { 'f.bin': FILE } })
  t.teardown(() => server.close())
  const c = await RawSocket.connect(p.host, p.port)
  t.teardown(() => c.close())
  t.ok(await c.until('\r\n'), 'a reply came')
  t.match(c.received.toString('latin1'), /^220 /, 'the server is up: the next client is greeted, not refused by the limit')
  t.equal(await metricValue(p, 'ftp_proxy_sessions_rejected_total', { reason: 'limit' }), 0, 'no client refused by the limit')
})
