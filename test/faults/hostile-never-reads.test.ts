// Issue 8, finding 3: a client that never reads is never freed. closeWith (idle timeout, shutdown,
// bad input) ended the client leg and destroyed it only on 'finish', which never comes once the
// client's receive window and the proxy's send buffer are full: with --idle-timeout 2s the session,
// its fds, its per-IP slot and ftp_proxy_sessions_active were still held long after the client went
// quiet. The fixed proxy destroys the client leg --close-timeout (2 s by default) after its final
// reply, whether or not the client reads it.
//
// The buffers are filled without the LPSV flood of finding 2 (its own test), so this test depends
// on this finding's fix only: the client sends NOOPs and never reads; the server answers each with
// a 2 kB line, which the proxy relays with backpressure until every buffer on the way is full and
// the proxy stops reading the client. Then the control connection is idle, and the idle timeout
// (2 s) fires. Ports: 27240-27259.
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import t from 'tap'
import { metricValue, startProxy } from '../fixtures/proxy.js'
import { RawFtp } from '../fixtures/raw-ftp.js'
import { assertReleased, baseline, freshTransfer, openFds, sleep, startFaultServer, waitFor } from './helpers.js'

t.setTimeout(120_000)
const SMALL = randomBytes(200_000)
const IDLE_MS = 2000
// The fix's --close-timeout default, plus the 3 s of margin the issue allows (idle + 5 s in all).
const FREED_WITHIN_MS = IDLE_MS + 5000
// 20,000 replies of 2 kB: 40 MB toward a client that reads nothing, far more than a loopback
// receive window and a send buffer hold together (a few MiB).
const NOOPS = 20_000
const LONG_NOOP_REPLY = `200 ${'n'.repeat(2000)}`

t.test('a client that never reads is freed after the idle timeout: session, fds, per-IP slot, sessions_active', async (t) => {
  const server = await startFaultServer({
    port: 27240,
    files: { 'small.bin': SMALL },
    onCommand: (cmd, s) => {
      if (cmd.verb !== 'NOOP') return 'default'
      s.write(LONG_NOOP_REPLY)
      return undefined
    },
  })
  t.teardown(() => server.close())
  // One session per client address: the hostile session's slot must come back for the next one.
  const p = await startProxy([
    '--upstream', `127.0.0.1:${server.port}`,
    '--passive-ports', '27250-27259',
    '--idle-timeout', `${IDLE_MS}ms`,
    '--max-sessions-per-client', '1',
  ], 'info')
  t.teardown(() => p.close())
  const fds = await baseline(t, p, 'small.bin', SMALL)

  // The hostile client: connects, sends its NOOPs, and never reads a byte (no 'data' listener, no
  // resume(): Node reads at most its highWaterMark into the stream's buffer, then stops).
  const hostile = net.connect({ host: p.host, port: p.port })
  hostile.on('error', () => {})
  t.teardown(() => hostile.destroy())
  await new Promise<void>((resolve, reject) => {
    hostile.once('connect', () => resolve())
    hostile.once('error', reject)
  })
  hostile.pause()
  // Let the greeting pass first, so the NOOPs are commands of a greeted session.
  t.ok(await waitFor(() => server.sessions === 1 && p.proxy.sessionCount === 1, 5000), 'the hostile session is open')
  await sleep(300)
  hostile.write(Buffer.from('NOOP\r\n'.repeat(NOOPS)))

  // The control connection goes quiet when the proxy stops forwarding NOOPs (everything toward the
  // client is full); the idle timeout counts from then. Bounded: 60 s in all.
  const started = Date.now()
  let seen = -1
  let quietSince = Date.now()
  for (;;) {
    const n = server.commands.length
    if (n !== seen) {
      seen = n
      quietSince = Date.now()
    }
    const freed = p.proxy.sessionCount === 0 && (await metricValue(p, 'ftp_proxy_sessions_active')) === 0
    if (freed || Date.now() - quietSince > FREED_WITHIN_MS || Date.now() - started > 60_000) break
    await sleep(50)
  }
  const quietFor = Date.now() - quietSince
  t.ok(server.commands.length < NOOPS + 2, `the proxy stopped forwarding NOOPs to a client that reads nothing (${server.commands.length - 1} of ${NOOPS} reached the server)`)
  t.equal(p.proxy.sessionCount, 0, `the session is gone within idle timeout + 5 s of the client going quiet (checked ${quietFor} ms after)`)
  t.equal(await metricValue(p, 'ftp_proxy_sessions_active'), 0, 'ftp_proxy_sessions_active is back to 0')
  t.equal(p.proxy.pool.inUse, 0, 'no pool port held')
  t.notOk(hostile.destroyed, 'although the client is still connected and still reads nothing')
  t.ok(p.logs.some((l) => /idle/i.test(String(l.msg))), 'the idle timeout fired (logged)')
  await waitFor(() => openFds() <= fds + 1, 2000)
  t.ok(openFds() <= fds + 1, `open file descriptors: only the hostile client's own socket is left (${openFds()} open, ${fds} before it connected)`)

  // The per-client slot (--max-sessions-per-client 1) is free again: a new session from the same
  // address gets a greeting, not "421 Too many connections", and transfers.
  const probe = await RawFtp.connect(p.host, p.port)
  const greeting = await probe.reply(5000).catch(() => null)
  probe.close()
  // The probe's own session ends before the next one takes the slot.
  await waitFor(() => p.proxy.sessionCount === 0, 5000)
  t.equal(greeting?.code, 220, `a new session from the same address is greeted (got: ${greeting?.text ?? 'nothing'})`)
  if (greeting?.code === 220) await freshTransfer(t, p, 'small.bin', SMALL, 'a session from the same address')

  hostile.destroy()
  await assertReleased(t, p, fds, 'after the hostile client left')
})
