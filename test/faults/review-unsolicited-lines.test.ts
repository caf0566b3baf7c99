// Hostile review of 5f3b1bf~1, defect 5: a hostile server answers an ordinary client's PASV with
// a 227 naming a port whose connect hangs (so the reply's rewrite, the head of the replies due to
// the client, waits for the dial), then sends 300 KiB of bare LFs. Each LF was framed as a line
// outside any reply and became its own slot, counted as 1 byte against the held-reply limit
// (256 KiB): the heap grew by ~104 MiB per session. Fixed: a per-buffer cost counts toward the
// held-bytes limit, unsolicited lines share one slot, and server bytes are framed into lines one
// at a time as the held-bytes limit allows (one 64 KiB read of LFs was still 65,536 live lines:
// five such sessions grew RSS by ~55 MiB before that last part).
//
// Against the built proxy process, whose RSS is what an operator watches: five such sessions at
// once; while all five dials hang, the proxy's RSS grows by less than 32 MiB over its baseline
// (after a GC). Then the port accepts again: every client gets its 227, and everything is
// released after the sessions.
//
//   npx tap test/faults/review-unsolicited-lines.test.ts            # this checkout's dist/
//   PROXY_ROOT=/work/pre-review npx tap test/faults/review-unsolicited-lines.test.ts
//
// Ports: scripted server 28240, pool 28370-28379; the hanging port is a worker's (port 0).
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { startProxyProcess } from '../fixtures/proxy-process.js'
import { pasvEndpoint, RawFtp } from '../fixtures/raw-ftp.js'
import { RawSocket, sha, sleep, startFaultServer, waitFor } from './helpers.js'
import { readData, startBlockedListener } from './review-helpers.js'

t.setTimeout(180_000)

const MiB = 1 << 20
const SESSIONS = 5
const LFS = Buffer.alloc(300 * 1024, 0x0a)
const FILE = randomBytes(100_000)
const ROOT = process.env['PROXY_ROOT']

t.test(`defect 5: ${SESSIONS} sessions whose server sends 300 KiB of LFs behind a 227 naming a port whose connect hangs`, async (t) => {
  const listener = await startBlockedListener(120_000)
  t.teardown(() => listener.close())
  let hostile = false
  const server = await startFaultServer({
    port: 28240,
    files: { 'f.bin': FILE },
    onCommand: (cmd, s) => {
      if (!hostile || cmd.verb !== 'PASV') return 'default'
      const port = listener.port
      s.write(`227 Entering Passive Mode (127,0,0,1,${port >> 8},${port & 255}).\r\n`)
      s.write(LFS)
      return undefined
    },
  })
  t.teardown(() => server.close())
  const p = await startProxyProcess({
    upstream: '127.0.0.1:28240',
    // The dial must hang for the whole measurement: SYNs are sent again after 1, 3, 7, 15 s.
    args: ['--passive-ports', '28370-28379', '--connect-timeout', '60s'],
    gcOnSignal: true,
    ...(ROOT === undefined ? {} : { root: ROOT }),
  })
  t.teardown(() => p.stop())
  t.comment(`proxy ${p.root}`)

  // Warm-up: one ordinary transfer, then a GC; the baseline is what the process then holds.
  {
    const c = await RawFtp.connect(p.host, p.port)
    await c.login()
    const ep = pasvEndpoint((await c.cmd('PASV')).text)
    const data = readData(ep.host, ep.port)
    t.equal((await c.cmd('RETR f.bin')).code, 226, 'warm-up: RETR answered 226')
    t.equal(sha((await data).bytes), sha(FILE), 'warm-up: equal bytes')
    await c.cmd('QUIT')
    c.close()
  }
  await waitFor(async () => (await p.metric('ftp_proxy_sessions_active')) === 0, 10_000)
  await p.gc()
  const base = p.rss()
  t.comment(`RSS at the baseline: ${(base / MiB).toFixed(1)} MiB`)

  t.ok(await listener.block(), 'the port the 227s name accepts nothing (its accept queue is full)')
  hostile = true
  const clients: RawSocket[] = []
  t.teardown(() => {
    for (const c of clients) c.close()
  })
  for (let i = 0; i < SESSIONS; i++) {
    const c = await RawSocket.connect(p.host, p.port)
    clients.push(c)
    c.socket.write('USER anonymous\r\nPASS x@\r\n')
    await c.until('230 ')
    c.socket.write('PASV\r\n')
  }
  // The LFs reach the proxy while every dial hangs: RSS sampled for 5 s.
  let peak = p.rss()
  const until = Date.now() + 5000
  while (Date.now() < until) {
    peak = Math.max(peak, p.rss())
    await sleep(100)
  }
  const grew = peak - base
  await p.gc()
  t.comment(`after a GC while waiting: ${((p.rss() - base) / MiB).toFixed(1)} MiB over the baseline; peak ${(peak / MiB).toFixed(1)}`)
  t.ok(grew < 32 * MiB, `the proxy's RSS grows by less than 32 MiB while the ${SESSIONS} sessions wait (grew ${(grew / MiB).toFixed(1)} MiB)`)
  t.equal(await p.metric('ftp_proxy_sessions_active'), SESSIONS, `the ${SESSIONS} sessions are open meanwhile`)
  t.equal(p.exitStatus(), null, 'the proxy process is still running')

  // The port accepts again: each 227 is rewritten and reaches its client.
  listener.release()
  hostile = false
  let answered = 0
  for (const c of clients) if (await c.until(/227 Entering Passive Mode \(127,0,0,1,\d+,\d+\)/, 30_000)) answered++
  t.equal(answered, SESSIONS, `every client gets its 227 once the port accepts (${answered} of ${SESSIONS})`)
  for (const c of clients) c.close()
  const released = await waitFor(async () => (await p.metric('ftp_proxy_sessions_active')) === 0 && (await p.metric('ftp_proxy_port_pool_in_use')) === 0, 15_000)
  t.ok(released, 'sessions_active and pool in use are back to 0 after the clients leave')
})
