// Issue 8, finding 2 (must-show 3): a client that never reads grew the proxy's memory without
// bound. Replies the proxy writes itself (LPSV, a malformed PORT, PASV after EPSV ALL) ignored
// write() returning false and never counted toward the pending-command limit: 10 MB of `LPSV\r\n`
// from a client that reads nothing grew the proxy by 279 MiB, and each refusal wrote an info log
// line, so the client set the log volume too. The fixed proxy sends its own replies through the
// client leg's one writer, stops reading the client when it backs up, and does not log each
// refusal; the idle timeout (2 s here) then ends the session although the client still reads
// nothing, and --close-timeout (2 s by default) frees it.
//
// Against the BUILT proxy process (test/fixtures/proxy-process.ts): its RSS, its fds, its log lines
// at the default level (info) and its /metrics are its own. PROXY_ROOT=/work/before runs it against
// the build before the fix. Ports: 27220-27239 (the proxy's own listener and metrics take port 0).
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import t, { type Test } from 'tap'
import { startProxyProcess, type ProxyProcess } from '../fixtures/proxy-process.js'
import { pasvEndpoint, RawFtp } from '../fixtures/raw-ftp.js'
import { sha, sleep, startFaultServer, waitFor } from './helpers.js'

t.setTimeout(240_000)
const SMALL = randomBytes(200_000)
const MIB = 1024 * 1024
const IDLE_MS = 2000
const FLOOD = Buffer.from('LPSV\r\n'.repeat(Math.ceil(10_000_000 / 6))) // 10 MB, 1,666,667 commands
const CHUNK = 64 * 1024
// Hard bound on the whole flood phase, whatever the proxy does.
const FLOOD_PHASE_MS = 120_000

/** Login, PASV, RETR: 226 and equal bytes, then QUIT; every step an assertion, never a throw. */
async function freshSession(t: Test, p: ProxyProcess, what: string): Promise<void> {
  let c: RawFtp | null = null
  try {
    c = await RawFtp.connect(p.host, p.port)
    await c.login()
    const pasv = await c.cmd('PASV')
    t.equal(pasv.code, 227, `${what}: PASV answered 227`)
    if (pasv.code !== 227) return
    const ep = pasvEndpoint(pasv.text)
    const data = new Promise<Buffer>((resolve) => {
      const s = net.connect(ep.port, ep.host)
      const chunks: Buffer[] = []
      s.on('data', (b: Buffer) => chunks.push(b))
      s.on('error', () => {})
      s.once('close', () => resolve(Buffer.concat(chunks)))
    })
    t.equal((await c.cmd('RETR small.bin')).code, 226, `${what}: RETR answered 226`)
    t.equal(sha(await data), sha(SMALL), `${what}: equal bytes (sha256)`)
    t.equal((await c.cmd('QUIT')).code, 221, `${what}: QUIT answered 221`)
  } catch (err) {
    t.fail(`${what}: ${(err as Error).message}`)
  } finally {
    c?.close()
  }
}

const metricOr = (p: ProxyProcess, name: string): Promise<number> => p.metric(name).catch(() => Number.NaN)

t.test('10 MB of LPSV from a client that reads nothing: RSS +16 MiB at most, few log lines, the session freed after the idle timeout', async (t) => {
  const server = await startFaultServer({ port: 27220, files: { 'small.bin': SMALL } })
  t.teardown(() => server.close())
  const p = await startProxyProcess({
    upstream: `127.0.0.1:${server.port}`,
    args: ['--passive-ports', '27230-27239', '--idle-timeout', `${IDLE_MS}ms`],
    // Every line is counted; keeping few makes a flood of them cheap for the test.
    maxLogLines: 2000,
  })
  t.teardown(() => p.stop())
  await freshSession(t, p, 'warm-up session')
  t.ok(await waitFor(async () => (await metricOr(p, 'ftp_proxy_sessions_active')) === 0, 5000), 'the warm-up session is closed')
  await sleep(300)
  const rssBefore = p.rss()
  const hwmBefore = p.peakRss()
  const fdsBefore = p.fds()
  const logsBefore = p.logCount()

  // The hostile client: no 'data' listener, no resume(); it only writes.
  const hostile = net.connect({ host: p.host, port: p.port })
  hostile.on('error', () => {})
  t.teardown(() => hostile.destroy())
  await new Promise<void>((resolve, reject) => {
    hostile.once('connect', () => resolve())
    hostile.once('error', reject)
  })
  hostile.pause()
  t.ok(await waitFor(() => server.sessions === 1, 5000), 'the hostile session reached the server')
  // The greeting passes (into the client's unread receive buffer) before the flood.
  await sleep(500)

  // The flood, 64 kB at a time with backpressure on the client's side: each chunk the kernel takes
  // is progress; when the proxy stops reading, progress stops, and that is when the client's
  // control connection goes quiet as far as the proxy can tell.
  const started = Date.now()
  let lastProgress = Date.now()
  let written = 0
  void (async () => {
    for (let off = 0; off < FLOOD.length && !hostile.destroyed; off += CHUNK) {
      const ok = hostile.write(FLOOD.subarray(off, off + CHUNK))
      if (!ok) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            hostile.off('drain', done)
            hostile.off('close', done)
            resolve()
          }
          hostile.on('drain', done)
          hostile.on('close', done)
        })
      }
      if (hostile.destroyed) break
      written = Math.min(off + CHUNK, FLOOD.length)
      lastProgress = Date.now()
    }
  })()

  let rssPeak = rssBefore
  let active = Number.NaN
  let gone = false
  let nextScrape = 0
  for (;;) {
    const now = Date.now()
    if (p.exitStatus() !== null) break
    try {
      rssPeak = Math.max(rssPeak, p.rss())
    } catch {
      break // the process is gone
    }
    if (now >= nextScrape) {
      active = await metricOr(p, 'ftp_proxy_sessions_active')
      nextScrape = Date.now() + 250
      if (active === 0) {
        gone = true
        break
      }
    }
    if (now - lastProgress > IDLE_MS + 5000 || now - started > FLOOD_PHASE_MS) break
    await sleep(100)
  }
  const quietFor = Date.now() - lastProgress
  const hwmAfter = p.exitStatus() === null ? p.peakRss() : 0
  // VmHWM catches a peak between samples; it counts only when it rose during the flood.
  const peak = hwmAfter > hwmBefore ? Math.max(rssPeak, hwmAfter) : rssPeak
  const logLines = p.logCount() - logsBefore

  t.equal(p.exitStatus(), null, 'the proxy process still runs')
  t.ok(peak - rssBefore < 16 * MIB, `proxy RSS grew by less than 16 MiB (grew ${((peak - rssBefore) / MIB).toFixed(1)} MiB; the client wrote ${(written / 1e6).toFixed(1)} of ${(FLOOD.length / 1e6).toFixed(1)} MB)`)
  t.ok(gone, `the session is gone within idle timeout + 5 s of the proxy's last read (sessions_active ${active}, checked ${quietFor} ms after, ${Date.now() - started} ms after the flood began)`)
  t.ok(logLines < 20, `the refusals did not write a log line each at info (${logLines} lines during the flood)`)
  if (p.exitStatus() !== null) return
  t.ok(await waitFor(() => p.fds() <= fdsBefore, 3000), `the proxy's open fds are back to ${fdsBefore} (${p.fds()}), although the client still reads nothing`)
  t.equal(await metricOr(p, 'ftp_proxy_port_pool_in_use'), 0, 'ftp_proxy_port_pool_in_use is 0')
  hostile.destroy()
  await freshSession(t, p, 'a new session after the flood')
})
