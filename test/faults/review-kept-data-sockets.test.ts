// Hostile review of 5f3b1bf~1, defect 1: a client that keeps its data sockets open after each
// finished download, and never reads them, held one descriptor of the proxy per download with no
// limit (after 300 downloads of 1 MiB the proxy held ~300 sockets, still after QUIT). A file
// larger than the client's receive buffer leaves bytes in the proxy's send queue, so the proxy
// kept the leg open until the queue emptied (never: the client does not read) or
// --data-idle-timeout (10 min) passed. Fixed: the proxy closes its side of a finished transfer's
// client data socket at once; the kernel still delivers the tail.
//
// Against the built proxy process, whose descriptors are what an operator counts
// (ls /proc/PID/fd): 50 downloads of 1 MiB whose data sockets the client keeps and does not read;
// then the proxy's fds are back near the baseline (with and after the session), the pool holds
// nothing, and every socket, read at last, brings the whole file (sha256).
//
//   npx tap test/faults/review-kept-data-sockets.test.ts            # this checkout's dist/
//   PROXY_ROOT=/work/pre-review npx tap test/faults/review-kept-data-sockets.test.ts
//
// Ports: scripted server 28220, pool 28340-28359.
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import t from 'tap'
import { startProxyProcess, type ProxyProcess } from '../fixtures/proxy-process.js'
import { pasvEndpoint, RawFtp, readAll } from '../fixtures/raw-ftp.js'
import { sha, sleep, startFaultServer, waitFor } from './helpers.js'
import { retrLikeVsftpd } from './review-helpers.js'

t.setTimeout(180_000)

const FILE = randomBytes(1 << 20)
const DOWNLOADS = 50
const ROOT = process.env['PROXY_ROOT']

/** Reads a socket from now to its end (or its error), within `ms`. */
function readRest(s: net.Socket, ms: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    const timer = setTimeout(() => done(), ms)
    const done = (): void => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks))
    }
    s.on('data', (c: Buffer) => chunks.push(c))
    s.once('end', done)
    s.once('close', done)
    s.resume()
  })
}

t.test(`defect 1: ${DOWNLOADS} downloads of 1 MiB whose data sockets the client keeps open and unread`, async (t) => {
  const server = await startFaultServer({ port: 28220, files: { 'f.bin': FILE }, onCommand: retrLikeVsftpd({ 'f.bin': FILE }) })
  t.teardown(() => server.close())
  const p: ProxyProcess = await startProxyProcess({
    upstream: '127.0.0.1:28220',
    args: ['--passive-ports', '28340-28359'],
    ...(ROOT === undefined ? {} : { root: ROOT }),
  })
  t.teardown(() => p.stop())
  t.comment(`proxy ${p.root}`)

  // A warm-up session first: the descriptors opened lazily on first use are in the baseline.
  {
    const c = await RawFtp.connect(p.host, p.port)
    await c.login()
    const ep = pasvEndpoint((await c.cmd('PASV')).text)
    const data = readAll(ep.host, ep.port)
    t.equal((await c.cmd('RETR f.bin')).code, 226, 'warm-up: RETR answered 226')
    t.equal(sha(await data), sha(FILE), 'warm-up: equal bytes')
    await c.cmd('QUIT')
    c.close()
  }
  await waitFor(async () => (await p.metric('ftp_proxy_sessions_active')) === 0, 10_000)
  await sleep(500)
  const base = p.fds()
  t.comment(`proxy fds at the baseline: ${base}`)

  const c = await RawFtp.connect(p.host, p.port)
  const kept: net.Socket[] = []
  t.teardown(() => {
    c.close()
    for (const s of kept) s.destroy()
  })
  await c.login()
  let ok = 0
  for (let i = 0; i < DOWNLOADS; i++) {
    const pasv = await c.cmd('PASV')
    if (pasv.code !== 227) {
      t.fail(`download ${i + 1}: PASV answered ${pasv.text}`)
      break
    }
    const ep = pasvEndpoint(pasv.text)
    // Connected, never read (until the end of the test), never closed.
    const s = net.connect({ host: ep.host, port: ep.port, allowHalfOpen: true })
    s.on('error', () => {})
    s.pause()
    kept.push(s)
    const r = await c.cmd('RETR f.bin')
    if (r.code !== 226) {
      t.fail(`download ${i + 1}: RETR answered ${r.text}`)
      break
    }
    ok++
  }
  t.equal(ok, DOWNLOADS, `every download answered 226 (${ok} of ${DOWNLOADS})`)

  // The session's two control legs, and nothing per download.
  await waitFor(() => p.fds() <= base + 4, 10_000)
  const during = p.fds()
  t.ok(during <= base + 4, `with the session open, the proxy holds ${during} fds (baseline ${base}; ${DOWNLOADS} data sockets kept by the client)`)
  t.equal(await p.metric('ftp_proxy_port_pool_in_use'), 0, 'ftp_proxy_port_pool_in_use is 0 while the client keeps its data sockets')

  t.equal((await c.cmd('QUIT')).code, 221, 'QUIT answered 221')
  await waitFor(async () => (await p.metric('ftp_proxy_sessions_active')) === 0 && p.fds() <= base, 10_000)
  const after = p.fds()
  t.ok(after <= base, `after QUIT the proxy holds ${after} fds (baseline ${base})`)
  t.equal(await p.metric('ftp_proxy_sessions_active'), 0, 'ftp_proxy_sessions_active is 0 after QUIT')
  t.equal(await p.metric('ftp_proxy_port_pool_in_use'), 0, 'ftp_proxy_port_pool_in_use is 0 after QUIT')

  // The client reads at last: every byte of every download was delivered.
  let equal = 0
  for (const s of kept) if (sha(await readRest(s, 10_000)) === sha(FILE)) equal++
  t.equal(equal, kept.length, `each kept data socket, read at last, brings the whole file (${equal} of ${kept.length} equal sha256)`)
  t.equal(p.exitStatus(), null, 'the proxy process is still running')
})
