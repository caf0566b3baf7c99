// The server stops answering: it accepts and never greets (--greeting-timeout), or greets and
// then leaves a command unanswered (--idle-timeout). The timeouts must fire, the client must get
// a 421 that says why, and everything must be released. (A data port that blackholes is covered
// by test/e2e/metrics-scenario.test.ts.) Ports: 26200-26299.
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import t, { type Test } from 'tap'
import { metricValue, startProxy, type TestProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp } from '../fixtures/raw-ftp.js'
import { baseline, endsClean, RawSocket, sleep, startFaultServer, waitFor, type FaultServer } from './helpers.js'

t.setTimeout(60_000)
const SMALL = randomBytes(200_000)
const TIMEOUTS = ['--idle-timeout', '1s', '--greeting-timeout', '1s', '--data-accept-timeout', '1s']

interface Env {
  server: FaultServer
  p: TestProxy
  fds: number
  /** While set, the server sends no greeting to new connections. */
  mute: { greeting: boolean; pasv: boolean }
}

let n = 0
async function setup(t: Test, args: string[] = TIMEOUTS): Promise<Env> {
  const i = n++
  const mute = { greeting: false, pasv: false }
  const server = await startFaultServer({
    port: 26200 + i,
    files: { 'small.bin': SMALL },
    greeting: () => (mute.greeting ? null : '220 fault server'),
    // Unanswered: everything on a connection that was not greeted (a hung server), SITE HANG and
    // RETR hang.bin always, PASV while mute.pasv.
    onCommand: (cmd, s) => {
      if (!s.greeted) return undefined
      if (cmd.verb === 'SITE' && cmd.arg === 'HANG') return undefined
      if (cmd.verb === 'RETR' && cmd.arg === 'hang.bin') return undefined
      if (cmd.verb === 'PASV' && mute.pasv) return undefined
      return 'default'
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', `${26210 + i * 10}-${26219 + i * 10}`, ...args])
  t.teardown(() => p.close())
  const fds = await baseline(t, p, 'small.bin', SMALL)
  return { server, p, fds, mute }
}

/** Waits for the next reply for up to `ms`; 'none' when nothing came. */
async function replyWithin(c: RawFtp, ms: number): Promise<{ code: number; text: string } | null | 'none'> {
  return c.reply(ms).catch(() => 'none' as const)
}

t.test('the server accepts and never greets: 421 after --greeting-timeout', async (t) => {
  // The idle timeout longer here: the next test shows the two expiring together.
  const { server, p, fds, mute } = await setup(t, ['--idle-timeout', '10s', '--greeting-timeout', '1s'])
  mute.greeting = true
  const c = await RawSocket.connect(p.host, p.port)
  t.teardown(() => c.close())
  // A client that does not wait for the greeting: its command waits at the server, unanswered.
  c.socket.write('USER anonymous\r\n')
  const started = Date.now()
  t.ok(await c.until('\n', 5000), 'a reply came')
  const took = Date.now() - started
  t.equal(c.received.toString('latin1'), '421 Service not available: the FTP server sent no greeting within 1 s.\r\n', 'the 421 says why')
  t.ok(took >= 900 && took < 3000, `after about 1 s (${took} ms)`)
  t.ok(await waitFor(() => c.closed, 3000), 'and the proxy closes the connection')
  t.ok(await waitFor(() => server.sessions === 0, 3000), "the proxy closed the server's connection too")
  t.ok(
    p.logs.some((l) => l.msg === 'the FTP server accepted the connection but sent no greeting; closing' && l.greetingTimeoutSeconds === 1),
    'logged as a warning with the timeout',
  )
  t.equal(p.logs.find((l) => l.msg === 'session closed' && l.sid === 's2')?.reason, 'no greeting', "the session's close names the reason")
  c.close()
  mute.greeting = false
  await endsClean(t, p, fds, 'small.bin', SMALL)
})

t.test('no greeting, and --idle-timeout equal to --greeting-timeout: one 421, and the log says which', async (t) => {
  // Both timers start with the session and expire in the same tick. Whichever fires first, the
  // client must get one 421 and the log must give the reason the client was told: the second
  // close must not overwrite the first (STYLE.md 4: teardown safe to call twice).
  const { p, fds, mute } = await setup(t)
  mute.greeting = true
  const c = await RawSocket.connect(p.host, p.port)
  t.teardown(() => c.close())
  t.ok(await waitFor(() => c.closed, 5000), 'the proxy closes the connection')
  const got = c.received.toString('latin1')
  t.match(got, /^421 [^\n]*\r\n$/, `the client got one 421 (${JSON.stringify(got)})`)
  const told = got.includes('no greeting') ? 'no greeting' : 'idle timeout'
  const logged = p.logs.find((l) => l.msg === 'session closed' && l.sid === 's2')?.reason
  t.equal(logged, told, `the close is logged with the reason the client was told ("${told}")`)
  c.close()
  mute.greeting = false
  await endsClean(t, p, fds, 'small.bin', SMALL)
})

for (const what of ['SITE HANG', 'PASV'] as const) {
  t.test(`the server greets, then never answers ${what}: 421 after --idle-timeout`, async (t) => {
    const { server, p, fds, mute } = await setup(t)
    mute.pasv = what === 'PASV'
    const c = await RawFtp.connect(p.host, p.port)
    t.teardown(() => c.close())
    await c.login()
    const started = Date.now()
    c.socket.write(`${what}\r\n`)
    const r = await replyWithin(c, 5000)
    const took = Date.now() - started
    t.equal(r === 'none' || r === null ? r : r.code, 421, 'the client gets 421')
    t.match(r === 'none' || r === null ? '' : r.text, /^421 Idle timeout \(1 s\): closing control connection\.$/, 'which says why')
    t.ok(took >= 900 && took < 3000, `after about 1 s (${took} ms)`)
    t.equal(await replyWithin(c, 3000), null, 'then the proxy closes the connection')
    t.ok(await waitFor(() => server.sessions === 0, 3000), "and the server's connection")
    t.ok(p.logs.some((l) => l.msg === 'control connection idle; closing' && l.idleSeconds === 1), 'logged with the timeout')
    t.equal(p.logs.find((l) => l.msg === 'session closed' && l.sid === 's2')?.reason, 'idle timeout', "the session's close names the reason")
    c.close()
    mute.pasv = false
    await endsClean(t, p, fds, 'small.bin', SMALL)
  })
}

t.test('the server never answers RETR and the client never connects: data-accept, then idle timeout', async (t) => {
  const { p, fds } = await setup(t)
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  t.equal((await c.cmd('PASV')).code, 227, 'PASV answered 227')
  const started = Date.now()
  c.socket.write('RETR hang.bin\r\n')
  // The lease waits 1 s for the client (--data-accept-timeout), then fails: nothing is left
  // running, so the idle timeout (1 s) must close the session like any other silence.
  t.ok(
    await waitFor(async () => (await metricValue(p, 'ftp_proxy_data_connection_failures_total', { reason: 'client_timeout' })) === 1, 5000),
    'the lease fails with client_timeout',
  )
  t.equal(p.proxy.pool.inUse, 0, 'its pool port is released')
  const r = await replyWithin(c, 4000)
  const took = Date.now() - started
  t.comment(`after ${took} ms the client saw ${JSON.stringify(r)}`)
  t.equal(r === 'none' || r === null ? r : r.code, 421, 'the idle timeout fires: 421 (a RETR whose lease has ended is no transfer in progress)')
  c.close()
  await endsClean(t, p, fds, 'small.bin', SMALL)
})

t.test('the server never answers RETR after the data connection came: released when the client gives up', async (t) => {
  const { p, fds } = await setup(t)
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  const ep = pasvEndpoint((await c.cmd('PASV')).text)
  const data = net.connect(ep.port, ep.host)
  data.on('error', () => {})
  t.teardown(() => data.destroy())
  await new Promise((r) => data.once('connect', r))
  c.socket.write('RETR hang.bin\r\n')
  // A claimed lease counts as a transfer in progress: the idle timeout leaves it alone, as it
  // leaves a slow transfer alone (test/e2e/ipv6-idle.test.ts). No proxy timeout covers a data
  // connection that carries nothing; the client's own timeout ends it.
  const r = await replyWithin(c, 2500)
  t.comment(`within 2.5 s (2.5 x the idle timeout) the client saw ${JSON.stringify(r)}`)
  t.equal(p.proxy.pool.inUse, 1, 'the lease still holds its port while the client waits')
  data.destroy()
  c.close()
  await sleep(50)
  await endsClean(t, p, fds, 'small.bin', SMALL)
  t.equal(await metricValue(p, 'ftp_proxy_data_connections_cancelled_total', { reason: 'closed' }), 1, 'the lease ended with its session: cancelled{closed}')
})
