// Hostile review of 5f3b1bf~1, defect 4: active mode made passive toward the server (PORT with
// --active-mode passive, the default). The proxy dials the server's data port, then the client's
// PORT address; the client's data listener is slow to accept (its accept queue is full, so the
// proxy's SYN waits to be sent again), and the server resets its data connection about 200 ms
// after the proxy connected. The proxy then answered 200 PORT with a lease whose server leg had
// already closed, and whose close it never saw: after the server's 425 to RETR the lease never
// ended. With --max-leases-per-client 1 every later PASV got 425 (in a new session after QUIT
// too), sessionCount stayed 1, proxy.close(0) never resolved. Fixed: a lease that adopts an
// already-closed server leg ends; close() waits at most 5 s for sessions.
//
// In-process proxy, a scripted server, the client's listener in a worker thread that stops
// accepting (test/faults/review-helpers.ts startBlockedListener).
//
// Ports: scripted server 28230, pool 28360-28369.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { metricValue, startProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp, type RawReply } from '../fixtures/raw-ftp.js'
import { sha, sleep, startFaultServer, waitFor } from './helpers.js'
import { readData, startBlockedListener } from './review-helpers.js'

t.setTimeout(120_000)

const FILE = randomBytes(100_000)

const send = (c: RawFtp, line: string): Promise<RawReply> => c.cmd(line).catch((err: Error) => ({ code: 0, text: err.message }))

t.test('defect 4: PORT, the client slow to accept, the server resetting its data connection: the lease ends', async (t) => {
  const listener = await startBlockedListener()
  t.teardown(() => listener.close())
  let resetAt = 0
  let hostile = true
  const server = await startFaultServer({
    port: 28230,
    files: { 'f.bin': FILE },
    onCommand: async (cmd, s) => {
      if (!hostile) return 'default'
      if (cmd.verb === 'PASV') {
        const port = await s.pasv()
        s.write(`227 Entering Passive Mode (127,0,0,1,${port >> 8},${port & 255}).`)
        // The proxy connects at once; the server resets that connection 200 ms later.
        void s.dataSocket(10_000).then((d) =>
          setTimeout(() => {
            d?.resetAndDestroy()
            resetAt = Date.now()
          }, 200),
        )
        return undefined
      }
      if (cmd.verb === 'RETR') return void s.write("425 Can't open data connection.")
      return 'default'
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy([
    '--upstream', `127.0.0.1:${server.port}`,
    '--passive-ports', '28360-28369',
    '--active-mode', 'passive',
    '--max-leases-per-client', '1',
    '--connect-timeout', '15s',
  ])
  t.teardown(() => p.close())

  t.ok(await listener.block(), "the client's data listener accepts nothing (its accept queue is full)")
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  const port = listener.port
  const portReply = send(c, `PORT 127,0,0,1,${port >> 8},${port & 255}`)
  // The server's reset comes while the proxy's connect to the client hangs; then the client's
  // listener accepts again, and the proxy's SYN, sent again, gets through.
  await waitFor(() => resetAt !== 0, 5000)
  await sleep(500)
  t.ok(resetAt !== 0, 'the server reset its data connection while the proxy was connecting to the client')
  listener.release()
  const r = await portReply
  t.equal(r.code, 200, `PORT answered 200 (${r.text})`)
  const retr = await send(c, 'RETR f.bin')
  t.equal(retr.code, 425, `RETR answered with the server's 425 (${retr.text})`)
  hostile = false

  // The lease has ended: the one lease this client address may hold is free again.
  const pasv = await send(c, 'PASV')
  t.equal(pasv.code, 227, `a PASV in the same session gets 227 (${pasv.text})`)
  t.equal((await send(c, 'QUIT')).code, 221, 'QUIT answered 221')
  c.close()
  await waitFor(() => p.proxy.sessionCount === 0 && p.proxy.pool.inUse === 0, 5000)
  t.equal(p.proxy.sessionCount, 0, 'sessionCount is 0 after QUIT')
  t.equal(await metricValue(p, 'ftp_proxy_sessions_active'), 0, 'ftp_proxy_sessions_active is 0')
  t.equal(await metricValue(p, 'ftp_proxy_port_pool_in_use'), 0, 'ftp_proxy_port_pool_in_use is 0')

  // A new session of the same client address transfers a file.
  const c2 = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c2.close())
  await c2.login()
  const pasv2 = await send(c2, 'PASV')
  t.equal(pasv2.code, 227, `a PASV in a new session after QUIT gets 227 (${pasv2.text})`)
  if (pasv2.code === 227) {
    const ep = pasvEndpoint(pasv2.text)
    const data = readData(ep.host, ep.port)
    t.equal((await send(c2, 'RETR f.bin')).code, 226, 'and its RETR 226')
    t.equal(sha((await data).bytes), sha(FILE), 'equal bytes (sha256)')
  }
  await send(c2, 'QUIT')
  c2.close()

  // The proxy shuts down (close(0): no grace): it holds nothing that keeps it waiting.
  let timer: NodeJS.Timeout | undefined
  const closed = await Promise.race([
    p.close().then(() => true),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), 10_000)
    }),
  ])
  clearTimeout(timer)
  t.ok(closed, 'proxy.close(0) resolves within 10 s')
})
