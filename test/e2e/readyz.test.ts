// /healthz and /readyz of the built program: /readyz turns unready within 25 s of the upstream
// FTP server going down and ready again within 25 s of its return (issue 3). The upstream is the
// scriptable double, in process, on a fixed port so that it can come back on the same one.
// Both waits are made the worst case on purpose: a client session connects to the upstream just
// before it goes down, and the failed probe that notices it has just run when it comes back, so
// each time the proxy waits the full 20 s before its next probe. Ports: 23250-23289.
import t from 'tap'
import { startFtpServer } from '../../src/demo/ftp-server.js'
import type { FtpServer } from '../../src/demo/ftp-server.js'
import { RawFtp } from '../fixtures/raw-ftp.js'
import { httpGet, startProxyProcess } from './lib/prometheus.js'
import type { HttpResult } from './lib/prometheus.js'

t.setTimeout(120_000)

const FTP_PORT = 23250
const PROXY_PORT = 23251
const METRICS_PORT = 23260
const LIMIT_MS = 25_000

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls /readyz every 200 ms until it answers `status` (at most `limitMs` + 5 s, 200 polls). */
async function waitForReadyz(base: string, status: number, limitMs: number): Promise<{ res: HttpResult; elapsedMs: number }> {
  const started = Date.now()
  const deadline = started + limitMs + 5000
  let res: HttpResult = { status: 0, body: '' }
  for (let i = 0; i < 200 && Date.now() < deadline; i++) {
    res = await httpGet(`${base}/readyz`)
    if (res.status === status) return { res, elapsedMs: Date.now() - started }
    await sleep(200)
  }
  throw new Error(`/readyz did not answer ${status} within ${Date.now() - started} ms; last: ${res.status} ${res.body}`)
}

let upstream: FtpServer | null = await startFtpServer({ port: FTP_PORT })
t.teardown(() => upstream?.close())
const proxy = await startProxyProcess([
  '--listen', `127.0.0.1:${PROXY_PORT}`,
  '--upstream', `127.0.0.1:${FTP_PORT}`,
  '--passive-ports', '23252-23259',
  '--metrics-listen', `127.0.0.1:${METRICS_PORT}`,
])
t.teardown(() => proxy.stop())

t.test('/healthz answers 200 while the process serves', async (t) => {
  const res = await httpGet(`${proxy.metricsBase}/healthz`)
  t.equal(res.status, 200)
  t.equal(res.body, 'ok\n')
})

t.test('/readyz is 200 "ready" while the upstream is up', async (t) => {
  // The probe's first connect runs at start; it may not have finished at the first request.
  const { res } = await waitForReadyz(proxy.metricsBase, 200, 5000)
  t.equal(res.body, 'ready\n')
})

t.test('/readyz turns 503 within 25 s of the upstream going down', async (t) => {
  // A client session's connect counts as the last attempt: the next probe is 20 s away.
  const ftp = await RawFtp.connect('127.0.0.1', PROXY_PORT)
  await ftp.login()
  t.equal((await ftp.cmd('QUIT')).code, 221, 'a session through the proxy just connected upstream')
  ftp.close()
  t.equal((await httpGet(`${proxy.metricsBase}/readyz`)).status, 200, 'still ready after the session')

  await upstream?.close()
  upstream = null
  const { res, elapsedMs } = await waitForReadyz(proxy.metricsBase, 503, LIMIT_MS)
  t.comment(`unready ${elapsedMs} ms after the upstream stopped listening: ${res.body.trim()}`)
  t.ok(elapsedMs <= LIMIT_MS, `unready after ${elapsedMs} ms (<= ${LIMIT_MS})`)
  t.match(res.body, /^not ready: the last connect to the FTP server failed \d+ s ago: ECONNREFUSED\n$/)
  t.equal((await httpGet(`${proxy.metricsBase}/healthz`)).status, 200, '/healthz stays 200: the process still serves')
})

t.test('/readyz is 200 again within 25 s of the upstream coming back', async (t) => {
  // The failed probe has just run: the next one is about 20 s away.
  upstream = await startFtpServer({ port: FTP_PORT })
  const { res, elapsedMs } = await waitForReadyz(proxy.metricsBase, 200, LIMIT_MS)
  t.comment(`ready ${elapsedMs} ms after the upstream listened again`)
  t.ok(elapsedMs <= LIMIT_MS, `ready after ${elapsedMs} ms (<= ${LIMIT_MS})`)
  t.equal(res.body, 'ready\n')
  t.equal(upstream.commands.length, 0, 'the probe never logs in: it sends no command')
})
