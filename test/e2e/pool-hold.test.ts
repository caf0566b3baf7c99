// Issue 8, finding 4 (must-show 4): one session must not hold the whole pool. A lease used to settle
// only when both data legs had closed: a client that reads each download to its end but never
// closes its data socket kept every lease, so after 10 downloads through a 10-port pool the 11th
// PASV got 425; and because those leases were still "claimed", the idle timeout never fired for
// the session. The fixed proxy ends a transfer once its data has been relayed and its final reply
// has passed, then closes both data legs (the client's after --close-timeout).
//
// One session downloads 20 files of 16 MiB from a real vsftpd through a 10-port pool, reading each
// data connection to EOF and never closing it (allowHalfOpen: no FIN of the client's, no end(), no
// destroy()). Ports: 27300-27399.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import t from 'tap'
import { baseline, openFds, sleep, waitFor } from '../faults/helpers.js'
import { metricValue, startProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp } from '../fixtures/raw-ftp.js'
import { makeRandomFile, startVsftpd } from './lib/servers.js'

t.setTimeout(300_000)
const FILES = 20
const FILE_BYTES = 16 * 1024 * 1024
const POOL = { min: 27350, max: 27359 } // 10 ports
// The fixed proxy's --max-leases-per-session default: one session never holds more at once.
const LEASE_CAP = 4
const IDLE_MS = 8000
const CLOSE_TIMEOUT_MS = 2000 // --close-timeout default

const server = await startVsftpd({ port: 27300, pasvMin: 27310, pasvMax: 27349, pasvAddress: '127.0.0.99' })
t.teardown(() => server.stop())
const warm = await makeRandomFile(server.root, 'warm.bin', 64 * 1024)
const files: Array<{ name: string; sha256: string }> = []
for (let i = 0; i < FILES; i++) {
  const name = `f${String(i).padStart(2, '0')}.bin`
  const f = await makeRandomFile(server.root, name, FILE_BYTES)
  files.push({ name, sha256: f.sha256 })
}

/** Reads a data connection to EOF, hashing as it goes; the socket is left open (never ended). */
function readToEof(host: string, port: number, kept: net.Socket[], ms: number): Promise<{ sha256: string; bytes: number; error: string | null }> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, allowHalfOpen: true })
    kept.push(s)
    const hash = createHash('sha256')
    let bytes = 0
    let settled = false
    const done = (error: string | null): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve({ sha256: hash.digest('hex'), bytes, error })
    }
    const timer = setTimeout(() => done(`no EOF within ${ms} ms`), ms)
    s.on('data', (c: Buffer) => {
      hash.update(c)
      bytes += c.length
    })
    // EOF: the proxy's FIN. The client's side stays open: no end(), no destroy().
    s.once('end', () => done(null))
    s.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message))
    s.once('close', () => done('closed before EOF'))
  })
}

t.test(`one session, ${FILES} downloads of 16 MiB through a ${POOL.max - POOL.min + 1}-port pool, data sockets never closed`, async (t) => {
  const p = await startProxy([
    '--upstream', '127.0.0.1:27300',
    '--passive-ports', `${POOL.min}-${POOL.max}`,
    '--idle-timeout', `${IDLE_MS}ms`,
  ], 'info')
  t.teardown(() => p.close())
  const fds = await baseline(t, p, 'warm.bin', readFileSync(warm.path))

  // Pool ports in use, sampled through the whole session.
  let maxInUse = 0
  const sampler = setInterval(() => {
    maxInUse = Math.max(maxInUse, p.proxy.pool.inUse)
  }, 20)
  t.teardown(() => clearInterval(sampler))

  const kept: net.Socket[] = []
  t.teardown(() => {
    for (const s of kept) s.destroy()
  })
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  t.equal((await c.cmd('TYPE I')).code, 200, 'TYPE I')

  let arrived = 0
  const failures: string[] = []
  for (const f of files) {
    const pasv = await c.cmd('PASV')
    if (pasv.code !== 227) {
      failures.push(`${f.name}: PASV answered ${pasv.text}`)
      continue
    }
    const ep = pasvEndpoint(pasv.text)
    const data = readToEof(ep.host, ep.port, kept, 60_000)
    const retr = await c.cmd(`RETR ${f.name}`).catch((e: Error) => ({ code: 0, text: e.message }))
    const got = await data
    if (retr.code !== 226) failures.push(`${f.name}: RETR answered ${retr.text}`)
    else if (got.error !== null || got.sha256 !== f.sha256) failures.push(`${f.name}: ${got.bytes} bytes, ${got.error ?? 'sha256 differs'}`)
    else arrived++
    maxInUse = Math.max(maxInUse, p.proxy.pool.inUse)
  }
  t.equal(arrived, FILES, `all ${FILES} files arrived sha256-equal, each RETR answered 226${failures.length === 0 ? '' : `; failed: ${failures.slice(0, 3).join('; ')}${failures.length > 3 ? ` (+${failures.length - 3} more)` : ''}`}`)
  t.ok(maxInUse <= LEASE_CAP, `the session never held more than ${LEASE_CAP} pool ports at once (the per-session lease cap; held at most ${maxInUse})`)

  // The client still holds every data socket open; the session is still open and silent. The
  // transfers are over, so their pool ports are free (the client's legs close after --close-timeout).
  await waitFor(async () => (await metricValue(p, 'ftp_proxy_port_pool_in_use')) === 0, CLOSE_TIMEOUT_MS + 3000)
  t.equal(await metricValue(p, 'ftp_proxy_port_pool_in_use'), 0, 'ftp_proxy_port_pool_in_use is 0 after the downloads, while the client still holds its data sockets')
  t.equal(p.proxy.sessionCount, 1, 'the session itself is still open')

  // The idle timeout fires for that session: its leases are over, not "claimed".
  const lastActivity = Date.now()
  const idle = await c.reply(IDLE_MS + 5000).catch(() => null)
  t.equal(idle?.code, 421, `the idle timeout closes the session with 421 (${idle?.text ?? `no reply within ${IDLE_MS + 5000} ms`})`)
  t.ok(await waitFor(() => p.proxy.sessionCount === 0, 5000), `the session is gone (${Date.now() - lastActivity} ms after the downloads' pool check)`)
  t.equal(await metricValue(p, 'ftp_proxy_sessions_active'), 0, 'ftp_proxy_sessions_active is 0')
  t.equal(await metricValue(p, 'ftp_proxy_port_pool_in_use'), 0, 'ftp_proxy_port_pool_in_use is 0 after the session')
  clearInterval(sampler)

  // The proxy keeps no descriptor for the data legs; the only ones left beyond the baseline are the
  // client's own data sockets, which it still has not closed.
  const own = kept.filter((s) => !s.destroyed).length
  await waitFor(() => openFds() <= fds + own, CLOSE_TIMEOUT_MS + 3000)
  t.ok(openFds() <= fds + own, `open file descriptors: ${openFds()}, at most ${fds} before plus the client's ${own} unclosed data sockets`)
  c.close()
  for (const s of kept) s.destroy()
  await sleep(100)
})
