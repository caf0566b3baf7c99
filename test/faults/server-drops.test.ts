// The server drops a RETR halfway: its data connection (reset, or closed early) and/or its
// control connection. The client must see a failure (426, or the control connection closing),
// the lease must be counted by what happened, and everything must be released.
// Ports: 26000-26099.
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import t, { type Test } from 'tap'
import { metricValue, startProxy, type TestProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp } from '../fixtures/raw-ftp.js'
import { baseline, endsClean, sleep, startFaultServer, waitFor, writeFlushed, type FaultServer, type FaultSession } from './helpers.js'

t.setTimeout(60_000)

const BIG = randomBytes(8 * 1024 * 1024)
const SENT = 1024 * 1024 // the server sends this much, then fails
const SMALL = randomBytes(200_000)

type Drop = (data: net.Socket, s: FaultSession) => void | Promise<void>

const drops: Record<string, Drop> = {
  // The server resets its data connection and reports the failure.
  'rst-426.bin': (data, s) => {
    data.resetAndDestroy()
    s.write('426 Connection closed; transfer aborted.')
  },
  // The server closes its data connection early (FIN: to TCP a clean end) and reports 426.
  'fin-426.bin': (data, s) => {
    data.destroy()
    s.write('426 Connection closed; transfer aborted.')
  },
  // The server process dies: both connections close (FIN), no reply.
  'crash-fin.bin': (data, s) => {
    data.destroy()
    s.control.destroy()
  },
  // The server host resets both connections, no reply.
  'crash-rst.bin': (data, s) => {
    data.resetAndDestroy()
    s.control.resetAndDestroy()
  },
  // Only the control connection drops; the data connection keeps sending (64 KiB every 10 ms,
  // so the rest would take over a second: the session's close comes first).
  'control-only.bin': async (data, s) => {
    s.control.destroy()
    for (let off = SENT; off < BIG.length && !data.destroyed; off += 64 * 1024) {
      await writeFlushed(data, BIG.subarray(off, off + 64 * 1024))
      await sleep(10)
    }
    data.end()
  },
}

async function setup(t: Test, port: number, pool: string): Promise<{ server: FaultServer; p: TestProxy; fds: number }> {
  const server = await startFaultServer({
    port,
    files: { 'small.bin': SMALL },
    onCommand: async (cmd, s) => {
      const drop = cmd.verb === 'RETR' ? drops[cmd.arg] : undefined
      if (drop === undefined) return 'default'
      const data = await s.dataSocket()
      if (data === null) return s.write("425 Can't open data connection.")
      s.write('150 Opening BINARY mode data connection.')
      await writeFlushed(data, BIG.subarray(0, SENT))
      await drop(data, s)
      return undefined
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${port}`, '--passive-ports', pool])
  t.teardown(() => p.close())
  const fds = await baseline(t, p, 'small.bin', SMALL)
  return { server, p, fds }
}

interface Seen {
  /** Bytes the client's data connection received before it ended. */
  bytes: number
  /** How the data connection ended: 'end' (a FIN) or the error code of a reset. */
  dataEnd: string
  /** The reply after the 150: its code, or null when the control connection closed instead. */
  final: number | null
  /** For a 426: the code of a NOOP sent afterwards (the session goes on). */
  noop?: number
}

async function retr(p: TestProxy, name: string): Promise<Seen> {
  const c = await RawFtp.connect(p.host, p.port)
  try {
    await c.login()
    const ep = pasvEndpoint((await c.cmd('PASV')).text)
    const data = net.connect(ep.port, ep.host)
    let bytes = 0
    const dataEnd = new Promise<string>((resolve) => {
      data.on('data', (d: Buffer) => (bytes += d.length))
      data.on('end', () => resolve('end'))
      data.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
    })
    await new Promise((r) => data.once('connect', r))
    c.socket.write(`RETR ${name}\r\n`)
    const first = await c.reply()
    if (first?.code !== 150) throw new Error(`expected 150, got ${first?.code}`)
    const end = await dataEnd
    data.destroy()
    const final = await c.reply(5000)
    const seen: Seen = { bytes, dataEnd: end, final: final?.code ?? null }
    if (final !== null) seen.noop = (await c.cmd('NOOP')).code
    return seen
  } finally {
    c.close()
  }
}

const outcomes = async (p: TestProxy): Promise<Record<string, number>> => ({
  ok: await metricValue(p, 'ftp_proxy_data_connections_total', { result: 'ok' }),
  failedReset: await metricValue(p, 'ftp_proxy_data_connection_failures_total', { reason: 'reset' }),
  cancelledClosed: await metricValue(p, 'ftp_proxy_data_connections_cancelled_total', { reason: 'closed' }),
  failed: await metricValue(p, 'ftp_proxy_data_connections_total', { result: 'failed' }),
  cancelled: await metricValue(p, 'ftp_proxy_data_connections_total', { result: 'cancelled' }),
})

/** What each drop must show. `reply`: 426, or null for the control connection closing. */
const expected: Record<string, { reply: number | null; closeReason?: RegExp }> = {
  'rst-426.bin': { reply: 426 },
  'fin-426.bin': { reply: 426 },
  'crash-fin.bin': { reply: null, closeReason: /server|upstream/ },
  'crash-rst.bin': { reply: null, closeReason: /server|upstream/ },
  'control-only.bin': { reply: null, closeReason: /server|upstream/ },
}

let port = 26000
let pool = 26010
for (const [name, want] of Object.entries(expected)) {
  t.test(`the server drops a RETR halfway: ${name}`, async (t) => {
    const { p, fds } = await setup(t, port++, `${pool}-${pool + 9}`)
    pool += 10
    const before = await outcomes(p)
    const seen = await retr(p, name)
    t.comment(`client saw: ${JSON.stringify(seen)}`)
    if (name === 'control-only.bin') {
      // The server keeps sending; the proxy cuts the relay when the session closes.
      t.ok(seen.bytes < BIG.length, `the client did not get the whole file (${seen.bytes} of ${BIG.length} bytes)`)
    } else {
      t.ok(seen.bytes <= SENT, `the client got at most the ${SENT} bytes the server sent (${seen.bytes})`)
    }
    t.equal(seen.final, want.reply, want.reply === null ? 'the control connection closed, no reply' : `the client got ${want.reply}`)
    if (seen.final !== null) t.equal(seen.noop, 200, 'the session goes on after the 426')
    // The lease is counted when it settles, which also frees its port (session.done may resolve
    // a tick earlier: it waits for the leases' data to drain, not for them to settle).
    await waitFor(() => p.proxy.sessionCount === 0 && p.proxy.pool.inUse === 0)
    const after = await outcomes(p)
    const delta = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]))
    t.comment(`lease counted: ${JSON.stringify(delta)}`)
    t.equal(delta.ok, 0, 'a transfer the server cut is not counted ok')
    t.equal((delta.failedReset ?? 0) + (delta.cancelledClosed ?? 0), 1, 'it is counted once, as failed{reset} or cancelled{closed}')
    const finished = p.logs.filter((l) => l.path === name && (l.msg === 'transfer finished' || l.msg === 'data connection failed'))
    t.equal(finished.length, 1, 'one log line for the lease')
    t.not(finished[0]?.result, 'ok', 'which does not say ok')
    if (want.closeReason !== undefined) {
      const sid = finished[0]?.sid
      const reason = String(p.logs.find((l) => l.msg === 'session closed' && l.sid === sid)?.reason)
      t.match(reason, want.closeReason, `the session's close names the server (logged: "${reason}")`)
    }
    await endsClean(t, p, fds, 'small.bin', SMALL)
  })
}
