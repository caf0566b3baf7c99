// 10,000 PASV in a row from one session, no transfer between them. Each new passive request
// replaces the previous one, which no client used (cancelled{replaced}): the pool never holds
// more than one port for the session, and memory and file descriptors stay bounded. The last
// one still carries a RETR. Ports: 26500-26599.
//
// The server side is kept cheap so the 10,000 round trips measure the proxy: every 227 names one
// shared data listener of the test, which takes any number of connections (the proxy dials the
// server's data endpoint for each PASV, before it answers).
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { metricValue, startProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp, readAll } from '../fixtures/raw-ftp.js'
import { baseline, endsClean, openFds, sha, startFaultServer, waitFor } from './helpers.js'

t.setTimeout(90_000)
const SMALL = randomBytes(200_000)
const N = 10_000

// A full GC before each heap reading, so the comparison is of live objects, not of garbage.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
const liveHeap = (): number => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

t.test(`${N} PASV in a row from one session`, async (t) => {
  // The shared data listener; the connection it accepted last belongs to the last PASV.
  const DATA_PORT = 26501
  let latest: net.Socket | null = null
  const held = new Set<net.Socket>()
  const dataListener = net.createServer((s) => {
    s.on('error', () => {})
    held.add(s)
    s.once('close', () => held.delete(s))
    latest = s
  })
  await new Promise<void>((resolve) => dataListener.listen(DATA_PORT, '127.0.0.1', () => resolve()))
  t.teardown(() => {
    for (const s of held) s.destroy()
    dataListener.close()
  })
  const server = await startFaultServer({
    port: 26500,
    files: { 'small.bin': SMALL },
    onCommand: async (cmd, s) => {
      if (cmd.verb === 'PASV') return s.write(`227 Entering Passive Mode (127,0,0,1,${DATA_PORT >> 8},${DATA_PORT & 255}).`)
      if (cmd.verb !== 'RETR' || latest === null) return 'default'
      const data = latest
      latest = null
      s.write('150 Opening BINARY mode data connection.')
      const closed = new Promise((r) => data.once('close', r))
      data.end(SMALL)
      await closed
      return s.write(data.writableFinished ? '226 Transfer complete.' : '426 Transfer aborted.')
    },
  })
  t.teardown(() => server.close())
  // Log level warn: the fixture keeps every log line in memory, which is not the proxy's memory.
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '26510-26519'], 'warn')
  t.teardown(() => p.close())
  const fds = await baseline(t, p, 'small.bin', SMALL)

  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  const heapBefore = liveHeap()
  const started = Date.now()
  let ok = 0
  let maxInUse = 0
  let maxFds = 0
  let heapMid = 0
  let last = ''
  const ports = new Set<number>()
  for (let i = 0; i < N; i++) {
    const r = await c.cmd('PASV')
    if (r.code === 227) ok++
    last = r.text
    ports.add(pasvEndpoint(r.text).port)
    maxInUse = Math.max(maxInUse, p.proxy.pool.inUse)
    if (i % 250 === 0) maxFds = Math.max(maxFds, openFds())
    if (i === N / 2) heapMid = liveHeap()
  }
  const took = Date.now() - started
  const heapAfter = liveHeap()
  t.comment(`${N} PASV in ${took} ms; heap ${(heapBefore / 1048576).toFixed(1)} -> ${(heapMid / 1048576).toFixed(1)} -> ${(heapAfter / 1048576).toFixed(1)} MiB; fds ${fds} baseline, ${maxFds} at most`)
  t.equal(ok, N, `every PASV answered 227 (${ok})`)
  t.ok(ports.size > 1 && [...ports].every((x) => x >= 26510 && x <= 26519), `every port from the pool (${ports.size} different)`)
  t.equal(maxInUse, 1, 'the pool never held more than one port for the session')
  t.ok(maxFds - fds <= 12, `file descriptors bounded: at most ${maxFds - fds} more than at rest (the session, its lease, the server's side)`)
  t.ok(heapAfter - heapBefore < 8 * 1048576, `live heap bounded: ${((heapAfter - heapBefore) / 1048576).toFixed(2)} MiB more after ${N} PASV`)
  t.ok(heapAfter - heapMid < 4 * 1048576, `and not growing with the count: ${((heapAfter - heapMid) / 1048576).toFixed(2)} MiB over the second half`)
  // About 5-17 s on this 2-CPU machine depending on its load; the bound only says it ends.
  t.ok(took < 60_000, `in ${took} ms`)

  // Every PASV but the last was replaced before any client used it.
  t.equal(await metricValue(p, 'ftp_proxy_data_connections_cancelled_total', { reason: 'replaced' }), N - 1, `cancelled{replaced} = ${N - 1}`)
  t.equal(await metricValue(p, 'ftp_proxy_passive_replies_total', { reply: '227' }), N + 1, `passive replies 227 = ${N + 1} (the warm-up's included)`)
  t.equal(await metricValue(p, 'ftp_proxy_data_connections_total', { result: 'failed' }), 0, 'no lease failed')

  // The last one carries a transfer.
  const ep = pasvEndpoint(last)
  const data = readAll(ep.host, ep.port)
  t.equal((await c.cmd('RETR small.bin')).code, 226, 'the last PASV carries a RETR')
  t.equal(sha(await data), sha(SMALL), 'with equal bytes')
  await waitFor(() => p.proxy.pool.inUse === 0)
  t.equal(await metricValue(p, 'ftp_proxy_data_connections_total', { result: 'ok' }), 2, 'counted ok (with the warm-up)')
  t.equal(held.size, 0, "no connection to the server's data port is left open")
  await c.cmd('QUIT')
  c.close()
  await endsClean(t, p, fds, 'small.bin', SMALL)
})
