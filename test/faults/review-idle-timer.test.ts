// Hostile review of 5f3b1bf~1, defect 8: once the idle timeout had passed during a transfer,
// the session's idle timer fired every 50 ms for as long as the transfer ran (it re-checked
// after max(timeout - quiet, 50 ms), and quiet only grows while the control connection is
// silent). Fixed: during a transfer it re-checks once per idle timeout.
//
// What shows it from outside: how often the proxy process's main thread wakes up, the
// voluntary context switches of /proc/PID/task/PID/status (what `pidstat -w -t` reports). The
// built proxy wakes about 100 times a second by itself (prom-client's event-loop-delay monitor
// samples every 10 ms), so the test compares the same process with no session and with one
// transfer stalled past the idle timeout (--idle-timeout 1s; the server sends 3 bytes, then
// nothing, and keeps the data connection open): a timer every 50 ms adds 20 wakeups a second,
// a re-check per timeout and the per-lease byte counter about 2.
//
//   npx tap test/faults/review-idle-timer.test.ts            # this checkout's dist/
//   PROXY_ROOT=/work/pre-review npx tap test/faults/review-idle-timer.test.ts
//
// Ports: scripted server 28250, pool 28380-28389.
import { readFileSync } from 'node:fs'
import net from 'node:net'
import t from 'tap'
import { startProxyProcess } from '../fixtures/proxy-process.js'
import { pasvEndpoint, RawFtp } from '../fixtures/raw-ftp.js'
import { sleep, startFaultServer } from './helpers.js'

t.setTimeout(120_000)

const ROOT = process.env['PROXY_ROOT']
const WINDOW_MS = 10_000

/** Voluntary context switches of the process's main thread (its TID is its PID). */
function wakeups(pid: number): number {
  const m = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'))
  if (m === null) throw new Error(`/proc/${pid}/task/${pid}/status has no voluntary_ctxt_switches`)
  return Number(m[1])
}

/** Wakeups per second of the main thread over WINDOW_MS. */
async function wakeupRate(pid: number): Promise<number> {
  const before = wakeups(pid)
  const at = performance.now()
  await sleep(WINDOW_MS)
  return ((wakeups(pid) - before) * 1000) / (performance.now() - at)
}

t.test('defect 8: a transfer stalled past the idle timeout does not wake the proxy every 50 ms', async (t) => {
  const server = await startFaultServer({
    port: 28250,
    onCommand: async (cmd, s) => {
      if (cmd.verb !== 'RETR') return 'default'
      const data = await s.dataSocket()
      if (data === null) return void s.write("425 Can't open data connection.")
      s.write('150 Opening BINARY mode data connection.')
      // Three bytes, then nothing: the transfer runs, no byte moves, the connection stays open.
      data.write('abc')
      return undefined
    },
  })
  t.teardown(() => server.close())
  // --data-idle-timeout stays at its default (10 min): the stalled transfer is not ended.
  const p = await startProxyProcess({
    upstream: '127.0.0.1:28250',
    args: ['--passive-ports', '28380-28389', '--idle-timeout', '1s'],
    ...(ROOT === undefined ? {} : { root: ROOT }),
  })
  t.teardown(() => p.stop())
  t.comment(`proxy ${p.root}`)
  await sleep(1000)
  const idle = await wakeupRate(p.pid)

  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  const pasv = await c.cmd('PASV')
  t.equal(pasv.code, 227, 'PASV answered 227')
  const ep = pasvEndpoint(pasv.text)
  const data = net.connect({ host: ep.host, port: ep.port })
  data.on('error', () => {})
  t.teardown(() => data.destroy())
  let got = 0
  data.on('data', (b: Buffer) => (got += b.length))
  c.socket.write('RETR stalled.bin\r\n')
  const first = await c.reply()
  t.equal(first?.code, 150, `RETR answered 150 (${first?.text ?? 'nothing'})`)
  // Past the idle timeout (1 s) with the control connection silent.
  await sleep(2500)
  const stalled = await wakeupRate(p.pid)
  t.equal(got, 3, 'the client got the 3 bytes, and no more (the transfer is stalled)')
  t.equal(await p.metric('ftp_proxy_sessions_active'), 1, 'the session is still open: the idle timeout does not end a running transfer')

  const extra = stalled - idle
  t.comment(`main-thread wakeups: ${idle.toFixed(1)}/s with no session, ${stalled.toFixed(1)}/s with the stalled transfer`)
  t.ok(extra < 8, `the stalled transfer adds fewer than 8 wakeups a second (adds ${extra.toFixed(1)}/s; a timer every 50 ms adds 20)`)
})
