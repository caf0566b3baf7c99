// Findings 9, 10 and 11 of issue 8 (hostile peers), each against the in-process proxy with real
// sockets, a scripted server that records every command it gets, and raw clients:
//
// - 9: only 500/502 to EPSV mean "this server has no EPSV"; a 530 or 550 is the server's answer
//   to the client and must reach it as it is, and the next EPSV is still sent as EPSV.
// - 10a/b: --data-idle-timeout: a data connection on which no byte moves either way, and a lease
//   whose data is done but whose final reply never comes, are ended (reason data_idle) and their
//   pool port freed; a slow trickle is not idle.
// - 10c: client commands queued behind unanswered ones stay bounded: the proxy does not forward
//   (or read) without limit while the server has answered nothing.
// - 10d: ABOR cancels the data legs with a reset, so an aborted upload reaches the server as a
//   reset (ECONNRESET), never as a clean end (a server stores a cleanly ended upload as complete).
// - 10e: EPRT is dialled with the normalised address (::ffff:127.0.0.1 is 127.0.0.1, dialled from
//   the proxy's own IPv4 control address), in passive and relay active modes.
// - 10f: leases per session (--max-leases-per-session, 4) and per client (--max-leases-per-client,
//   50): over them a 425 and failures{reason="lease_limit"}; 100 sessions from one address cannot
//   empty a 100-port pool; IPv6 clients are grouped by /64 (--client-ipv6-prefix) for the session
//   and lease limits, shown in a network namespace this test creates (two /64s on its loopback).
// - 11: a client that hangs up without QUIT is logged as 'client closed the connection'.
//
// Ports: 27480-27599 only. Scripted servers 27480-27489, small pools 27490-27499, the lease
// pools 27500-27599 (subtests run one after another, each proxy closed at its end). Inside the
// namespace the same numbers are free again (its own network stack).
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import { metricValue, startProxy, type TestProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp, readAll } from '../fixtures/raw-ftp.js'
import { findBinary } from '../e2e/lib/bin.js'
import { runProcess } from '../e2e/lib/proc.js'
import { freshTransfer, sha, sleep, startFaultServer, waitFor, type FaultServer, type FaultSession } from './helpers.js'

t.setTimeout(200_000)

const failures = (p: TestProxy, reason: string): Promise<number> => metricValue(p, 'ftp_proxy_data_connection_failures_total', { reason })

/** A data connection of the client's: every byte it gets, and whether (and when) it closed. */
class ClientData {
  readonly socket: net.Socket
  readonly chunks: Buffer[] = []
  closedAt: number | null = null
  lastByteAt = Date.now()

  constructor(host: string, port: number) {
    this.socket = net.connect({ host, port })
    this.socket.on('data', (c: Buffer) => {
      this.chunks.push(c)
      this.lastByteAt = Date.now()
    })
    this.socket.on('error', () => {})
    this.socket.once('close', () => (this.closedAt = Date.now()))
  }

  get bytes(): Buffer {
    return Buffer.concat(this.chunks)
  }

  get closed(): boolean {
    return this.closedAt !== null
  }
}

async function login(p: TestProxy, localAddress?: string, host = p.host, port = p.port): Promise<RawFtp> {
  const c = await RawFtp.connect(host, port, localAddress)
  await c.login()
  return c
}

/** The final reply to `line`, or code 0 with the error when none came (closed, or no reply in time). */
async function send(c: RawFtp, line: string): Promise<{ code: number; text: string }> {
  return c.cmd(line).catch((err: Error) => ({ code: 0, text: err.message }))
}

// ---- finding 9 --------------------------------------------------------------------------------

t.test('finding 9: only 500/502 to EPSV switch the session to PASV; 530 and 550 reach the client as they are', async (t) => {
  const file = randomBytes(150_000)
  // What the server answers to each EPSV it receives, in order; '229' opens a passive port.
  const epsvAnswers: string[] = []
  const server = await startFaultServer({
    port: 27480,
    files: { 'f.bin': file },
    onCommand: async (cmd, s) => {
      if (cmd.verb !== 'EPSV') return 'default'
      const next = epsvAnswers.shift() ?? '229'
      if (next !== '229') return s.write(next)
      const port = await s.pasv()
      return s.write(`229 Entering Extended Passive Mode (|||${port}|)`)
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '27490-27491'])
  t.teardown(() => p.close())

  /** The commands the server got since `from`, login and QUIT left out. */
  const since = (from: number): string[] => server.commands.slice(from).filter((l) => !/^(USER|PASS|QUIT)\b/.test(l))

  /** EPSV answered 229, then RETR through it: 226 and equal bytes. */
  async function retrOverEpsv(t: Test, c: RawFtp, what: string): Promise<void> {
    const r = await send(c, 'EPSV')
    t.equal(r.code, 229, `${what}: EPSV answered 229 (${r.text})`)
    const m = /\(\|\|\|(\d+)\|\)/.exec(r.text)
    if (r.code !== 229 || m === null) return
    const data = readAll(p.host, Number(m[1]))
    t.equal((await send(c, 'RETR f.bin')).code, 226, `${what}: RETR answered 226`)
    t.equal(sha(await data), sha(file), `${what}: equal bytes (sha256)`)
  }

  await t.test('530 and 550 to EPSV', async (t) => {
    const c = await login(p)
    t.teardown(() => c.close())
    const from = server.commands.length
    epsvAnswers.push('530 Please login with USER and PASS.', '550 EPSV is refused by policy here.')
    const r530 = await send(c, 'EPSV')
    t.same(r530, { code: 530, text: '530 Please login with USER and PASS.' }, "the server's 530 reaches the client as it is")
    const r550 = await send(c, 'EPSV')
    t.same(r550, { code: 550, text: '550 EPSV is refused by policy here.' }, "the server's 550 reaches the client as it is")
    await retrOverEpsv(t, c, 'the third EPSV')
    t.same(since(from), ['EPSV', 'EPSV', 'EPSV', 'RETR f.bin'], 'the server got every EPSV as EPSV, never a PASV')
    await send(c, 'QUIT')
  })

  for (const code of [500, 502]) {
    await t.test(`${code} to EPSV: the server has no EPSV, the session asks with PASV from then on`, async (t) => {
      const c = await login(p)
      t.teardown(() => c.close())
      const from = server.commands.length
      epsvAnswers.push(`${code} EPSV not understood.`)
      await retrOverEpsv(t, c, `after the ${code}`)
      await retrOverEpsv(t, c, 'the next EPSV')
      t.same(since(from), ['EPSV', 'PASV', 'RETR f.bin', 'PASV', 'RETR f.bin'], 'EPSV once, then PASV for this session')
      await send(c, 'QUIT')
    })
  }
})

// ---- finding 10a and 10b: --data-idle-timeout --------------------------------------------------

const IDLE_S = 3

t.test(`finding 10a: a data connection with no byte moving for --data-idle-timeout (${IDLE_S}s) is closed, counted data_idle, its port freed`, async (t) => {
  const head = randomBytes(1000)
  const trickle = randomBytes(14)
  const server = await startFaultServer({
    port: 27481,
    files: { 'small.bin': randomBytes(50_000) },
    onCommand: async (cmd, s) => {
      if (cmd.verb !== 'RETR' || (cmd.arg !== 'stall.bin' && cmd.arg !== 'trickle.bin')) return 'default'
      const data = await s.dataSocket()
      if (data === null) return s.write("425 Can't open data connection.")
      s.write('150 Opening BINARY mode data connection.')
      if (cmd.arg === 'stall.bin') {
        // 1000 bytes, then nothing, the connection held open; a 426 once the proxy closes it.
        data.write(head)
        data.once('close', () => s.write('426 Connection closed; transfer aborted.'))
        return
      }
      // One byte every 400 ms, 5.6 s in all: slow, never idle for the timeout.
      for (let i = 0; i < trickle.length; i++) {
        data.write(trickle.subarray(i, i + 1))
        await sleep(400)
      }
      const closed = new Promise((r) => data.once('close', r))
      data.end()
      await closed
      s.dropData()
      return s.write('226 Transfer complete.')
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '27492-27493', '--data-idle-timeout', `${IDLE_S}s`])
  t.teardown(() => p.close())

  await t.test('a stalled download', async (t) => {
    const c = await login(p)
    t.teardown(() => c.close())
    const ep = pasvEndpoint((await c.cmd('PASV')).text)
    const data = new ClientData(ep.host, ep.port)
    t.teardown(() => data.socket.destroy())
    c.socket.write('RETR stall.bin\r\n')
    t.equal((await c.reply())?.code, 150, 'the server starts the transfer (150)')
    t.ok(await waitFor(() => data.bytes.length === head.length, 5000), 'the client gets the first 1000 bytes')
    await sleep(1000)
    t.notOk(data.closed, `1 s after the last byte the data connection is still open (timeout ${IDLE_S} s)`)
    t.equal(p.proxy.pool.inUse, 1, 'and holds its pool port')
    t.ok(await waitFor(() => data.closed, (IDLE_S + 10) * 1000), 'then the proxy closes the idle data connection')
    const idleFor = ((data.closedAt ?? Date.now()) - data.lastByteAt) / 1000
    t.ok(idleFor >= IDLE_S - 0.5, `after about --data-idle-timeout without a byte (${idleFor.toFixed(1)} s)`)
    t.ok(await waitFor(() => p.proxy.pool.inUse === 0, 5000), 'the pool port is free')
    t.ok(await waitFor(async () => (await failures(p, 'data_idle')) === 1, 5000), 'ftp_proxy_data_connection_failures_total{reason="data_idle"} is 1')
    const final = await c.reply(10_000).catch(() => null)
    t.ok(final !== null && final.code >= 400 && final.code < 500, `the client gets a 4xx final reply to its RETR (${final?.text})`)
    t.ok(p.logs.some((l) => l.msg === 'data connection failed' && l.reason === 'data_idle'), 'logged as a failed data connection, reason data_idle')
    t.equal((await send(c, 'NOOP')).code, 200, 'the session goes on')
  })

  await t.test('a download that trickles one byte every 400 ms is not idle', async (t) => {
    const idleBefore = await failures(p, 'data_idle')
    const c = await login(p)
    t.teardown(() => c.close())
    const ep = pasvEndpoint((await c.cmd('PASV')).text)
    const data = readAll(ep.host, ep.port)
    const started = Date.now()
    t.equal((await send(c, 'RETR trickle.bin')).code, 226, 'RETR answered 226')
    t.equal(sha(await data), sha(trickle), 'every byte arrives (sha256)')
    t.ok(Date.now() - started > IDLE_S * 1000, `the transfer took longer than the timeout (${((Date.now() - started) / 1000).toFixed(1)} s)`)
    t.equal(await failures(p, 'data_idle'), idleBefore, 'nothing counted as data_idle')
  })
})

t.test(`finding 10b: a lease whose data is done but whose final reply never comes ends after --data-idle-timeout (${IDLE_S}s)`, async (t) => {
  const file = randomBytes(200_000)
  const server = await startFaultServer({
    port: 27482,
    files: { 'small.bin': randomBytes(50_000) },
    onCommand: async (cmd, s) => {
      if (cmd.verb !== 'RETR' || cmd.arg !== 'nofinal.bin') return 'default'
      const data = await s.dataSocket()
      if (data === null) return s.write("425 Can't open data connection.")
      s.write('150 Opening BINARY mode data connection.')
      const closed = new Promise((r) => data.once('close', r))
      data.end(file)
      await closed
      s.dropData()
      // ...and no 226, ever.
      return undefined
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '27494-27495', '--data-idle-timeout', `${IDLE_S}s`])
  t.teardown(() => p.close())
  const c = await login(p)
  t.teardown(() => c.close())
  const ep = pasvEndpoint((await c.cmd('PASV')).text)
  const data = readAll(ep.host, ep.port) // reads to the end, then closes its socket
  c.socket.write('RETR nofinal.bin\r\n')
  t.equal((await c.reply())?.code, 150, 'the server starts the transfer (150)')
  t.equal(sha(await data), sha(file), 'the client gets every byte and closes its data connection')
  const doneAt = Date.now()
  await sleep(500)
  t.equal(p.proxy.pool.inUse, 1, 'the lease waits for the final reply (its port still held)')
  t.ok(await waitFor(() => p.proxy.pool.inUse === 0, (IDLE_S + 10) * 1000), 'then the pool port is freed')
  const after = (Date.now() - doneAt) / 1000
  t.ok(after >= IDLE_S - 0.5, `after about --data-idle-timeout (${after.toFixed(1)} s)`)
  t.ok(await waitFor(async () => (await failures(p, 'data_idle')) === 1, 5000), 'counted as failures{reason="data_idle"}')
  t.ok(p.logs.some((l) => l.msg === 'data connection failed' && l.reason === 'data_idle'), 'logged with reason data_idle')
})

// ---- finding 10c: queued client commands are bounded --------------------------------------------

t.test('finding 10c: with --active-mode relay and a server that answers nothing, pipelined commands stay bounded until replies flow', async (t) => {
  const N = 100_000
  let release!: () => void
  const released = new Promise<void>((r) => (release = r))
  const server = await startFaultServer({
    port: 27483,
    onCommand: async (cmd, s) => {
      if (cmd.verb === 'PORT' || cmd.verb === 'EPRT') return s.write(`200 ${cmd.verb} command successful.`)
      if (cmd.verb !== 'NOOP') return 'default'
      await released
      return s.write('200 NOOP ok.')
    },
  })
  t.teardown(() => server.close())
  // Info level: a debug line per command would be 100,000 lines.
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '27496-27497', '--active-mode', 'relay', '--data-accept-timeout', '60s'], 'info')
  t.teardown(() => p.close())
  // The client's own data address, for the PORT (nothing connects to it in this test).
  const listener = net.createServer((s) => s.destroy())
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r))
  t.teardown(() => listener.close())
  const lport = (listener.address() as net.AddressInfo).port

  const c = await login(p)
  t.teardown(() => c.close())
  const from = server.commands.length
  // Counted here: RawFtp would queue 100,000 replies for cmd() to read one by one.
  let finals = 0
  let last = ''
  let text = ''
  c.socket.on('data', (b: Buffer) => {
    text += b.toString('latin1')
    const lines = text.split('\n')
    text = lines.pop() ?? ''
    for (const l of lines) {
      if (!/^\d{3} /.test(l)) continue
      finals++
      last = l.trimEnd()
    }
  })
  // A command whose setup is asynchronous (a relayed PORT needs a pool port), then 600 KB of
  // NOOPs in the same write, which no one answers yet.
  c.socket.write(`PORT 127,0,0,1,${lport >> 8},${lport & 255}\r\n${'NOOP\r\n'.repeat(N)}`)
  await sleep(2000)
  const forwarded = server.commands.length - from
  // The proxy stops reading the client at its limit of unanswered commands (64): forwarding a
  // whole read (10,000 NOOPs per 64 KiB) is the unbounded queue of the finding.
  t.ok(forwarded >= 1 && forwarded <= 128, `while nothing is answered the server received at most 128 commands (got ${forwarded})`)
  t.ok(finals <= 1, `and the client got no NOOP reply (${finals} final replies, the PORT's at most)`)
  const stillQueued = server.commands.length - from
  await sleep(500)
  t.equal(server.commands.length - from, stillQueued, 'and no more arrive while the server stays silent')

  release()
  t.ok(await waitFor(() => finals === N + 1, 90_000), `once replies flow, every command is answered (${finals} of ${N + 1} final replies)`)
  t.equal(server.commands.length - from, N + 1, 'and the server received each command once')
  c.socket.write('QUIT\r\n')
  t.ok(await waitFor(() => finals === N + 2, 5000), 'QUIT answered')
  t.match(last, /^221 /, `with 221 (${last})`)
  t.ok(await waitFor(() => p.proxy.sessionCount === 0 && p.proxy.pool.inUse === 0, 10_000), 'nothing left: no session, no pool port')
})

// ---- finding 10d: ABOR resets the data legs -------------------------------------------------------

t.test('finding 10d: ABOR during an upload reaches the server as a reset (ECONNRESET), never as a clean end', async (t) => {
  interface Seen {
    bytes: number
    end: boolean
    error: string | null
    closed: boolean
  }
  // Set by the server when the STOR's data connection comes (a holder: TS narrows a let to null).
  const box: { seen: Seen | null } = { seen: null }
  const server = await startFaultServer({
    port: 27484,
    files: { 'small.bin': randomBytes(50_000) },
    onCommand: async (cmd, s) => {
      if (cmd.verb === 'ABOR') return s.write('226 ABOR successful.')
      if (cmd.verb !== 'STOR') return 'default'
      const data = await s.dataSocket()
      if (data === null) return s.write("425 Can't open data connection.")
      const rec: Seen = { bytes: 0, end: false, error: null, closed: false }
      box.seen = rec
      data.on('data', (b: Buffer) => (rec.bytes += b.length))
      data.on('end', () => (rec.end = true))
      data.on('error', (e: NodeJS.ErrnoException) => (rec.error = e.code ?? e.message))
      data.once('close', () => {
        rec.closed = true
        // A server stores a cleanly ended upload as complete.
        s.write(rec.end && rec.error === null ? '226 Transfer complete.' : '426 Connection closed; transfer aborted.')
      })
      s.write('150 Ok to send data.')
      return undefined
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '27498-27499'])
  t.teardown(() => p.close())
  const abortedBefore = await metricValue(p, 'ftp_proxy_data_connections_cancelled_total', { reason: 'aborted' })
  const c = await login(p)
  t.teardown(() => c.close())
  const ep = pasvEndpoint((await c.cmd('PASV')).text)
  const data = new ClientData(ep.host, ep.port)
  t.teardown(() => data.socket.destroy())
  await new Promise((r) => data.socket.once('connect', r))
  c.socket.write('STOR up.bin\r\n')
  t.equal((await c.reply())?.code, 150, 'the server is ready for the upload (150)')
  const part = randomBytes(256 * 1024)
  data.socket.write(part)
  t.ok(await waitFor(() => box.seen !== null && box.seen.bytes === part.length, 5000), 'the first 256 KiB reach the server')
  // The upload is not finished: the client aborts it, its data socket still open.
  c.socket.write('ABOR\r\n')
  t.ok(await waitFor(() => box.seen?.closed === true, 5000), "the server's data connection is closed")
  t.equal(box.seen?.error ?? null, 'ECONNRESET', 'by a reset: the server sees ECONNRESET')
  t.equal(box.seen?.end, false, 'and never a clean end (no FIN before it)')
  t.ok(
    await waitFor(async () => (await metricValue(p, 'ftp_proxy_data_connections_cancelled_total', { reason: 'aborted' })) === abortedBefore + 1, 5000),
    'the lease is counted cancelled{reason="aborted"}',
  )
  t.ok(await waitFor(() => p.proxy.pool.inUse === 0, 5000), 'its pool port is free')
  t.equal((await send(c, 'NOOP')).code >= 200, true, 'the session still answers')
})

// ---- finding 10e: EPRT dialled with the normalised address -----------------------------------------

t.test('finding 10e: EPRT is dialled with the normalised address', async (t) => {
  const file = randomBytes(300_000)
  // Relay mode: the proxy sends the server a PORT naming itself; the server connects there.
  const activeTargets = new WeakMap<FaultSession, { host: string; port: number }>()
  const server = await startFaultServer({
    port: 27485,
    files: { 'f.bin': file },
    onCommand: async (cmd, s) => {
      if (cmd.verb === 'PORT') {
        const n = cmd.arg.split(',').map(Number)
        activeTargets.set(s, { host: n.slice(0, 4).join('.'), port: n[4]! * 256 + n[5]! })
        return s.write('200 PORT command successful.')
      }
      const target = activeTargets.get(s)
      if (cmd.verb !== 'RETR' || target === undefined) return 'default'
      activeTargets.delete(s)
      const d = net.connect({ host: target.host, port: target.port })
      d.on('error', () => {})
      const ok = await new Promise<boolean>((r) => {
        d.once('connect', () => r(true))
        d.once('error', () => r(false))
      })
      if (!ok) return s.write("425 Can't open data connection.")
      s.write('150 Opening BINARY mode data connection.')
      const closed = new Promise((r) => d.once('close', r))
      d.end(file)
      await closed
      return s.write(d.writableFinished ? '226 Transfer complete.' : '426 Connection closed; transfer aborted.')
    },
  })
  t.teardown(() => server.close())

  const cases = [
    // The client reached the proxy at 127.0.0.2 from 127.0.0.1 and names itself in IPv4-mapped form.
    { name: 'EPRT |2|::ffff:127.0.0.1|', client: '127.0.0.1', proxyAt: '127.0.0.2', listen: '127.0.0.2:0', eprtHost: '::ffff:127.0.0.1', canonical: '127.0.0.1' },
    // ::1 written out in full.
    { name: 'EPRT |2|0:0:0:0:0:0:0:1|', client: '::1', proxyAt: '::1', listen: '[::1]:0', eprtHost: '0:0:0:0:0:0:0:1', canonical: '::1' },
  ]
  for (const mode of ['passive', 'relay'] as const) {
    for (const k of cases) {
      await t.test(`${k.name} with --active-mode ${mode}`, async (t) => {
        const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '27500-27509', '--listen', k.listen, '--active-mode', mode])
        t.teardown(() => p.close())
        const at = p.proxy.addresses().find((a) => a.host === k.proxyAt)
        if (at === undefined) throw new Error(`the proxy does not listen on ${k.proxyAt}`)
        // The client's data listener, on its own address; it records where each connection came from.
        const conns: Array<{ from: string; bytes: Promise<Buffer> }> = []
        const listener = net.createServer((s) => {
          s.on('error', () => {})
          const chunks: Buffer[] = []
          s.on('data', (b: Buffer) => chunks.push(b))
          conns.push({ from: s.remoteAddress ?? '', bytes: new Promise((r) => s.once('close', () => r(Buffer.concat(chunks)))) })
        })
        await new Promise<void>((r) => listener.listen(0, k.client, r))
        t.teardown(() => listener.close())
        const lport = (listener.address() as net.AddressInfo).port

        const c = await login(p, k.client, at.host, at.port)
        t.teardown(() => c.close())
        const r = await send(c, `EPRT |2|${k.eprtHost}|${lport}|`)
        t.equal(r.code, 200, `EPRT accepted (${r.text})`)
        t.equal((await send(c, 'RETR f.bin')).code, 226, 'RETR answered 226')
        t.ok(await waitFor(() => conns.length === 1, 5000), 'one data connection reached the client')
        const conn = conns[0]
        if (conn === undefined) return
        t.equal(sha(await conn.bytes), sha(file), 'equal bytes (sha256)')
        t.equal(conn.from, k.proxyAt, `it came from the address the client reached the proxy at (${conn.from})`)
        const targets = p.logs.map((l) => l.activeTarget).filter((x): x is string => typeof x === 'string')
        t.ok(targets.length > 0, 'the log names the active target')
        t.ok(
          targets.every((x) => !x.includes(k.eprtHost) && x.replace(/^\[|\](?=:\d+$)/g, '') === `${k.canonical}:${lport}`),
          `as the normalised address ${k.canonical}, not the text the client sent (${targets.join(', ')})`,
        )
        await send(c, 'QUIT')
      })
    }
  }
})

// ---- finding 10f: leases per session and per client ----------------------------------------------

/**
 * A scripted server with one file. After `SITE HOLD` a session's PASV opens a new listener each
 * time and keeps every earlier one and its connection open (the default PASV drops the previous
 * data connection, which would end the proxy's lease for it).
 */
async function plainServer(t: Test, port: number, file: Buffer): Promise<FaultServer> {
  const holding = new WeakSet<FaultSession>()
  const kept: Array<net.Server | net.Socket> = []
  const server = await startFaultServer({
    port,
    files: { 'f.bin': file },
    onCommand: async (cmd, s) => {
      if (cmd.verb === 'SITE' && cmd.arg === 'HOLD') {
        holding.add(s)
        return s.write('200 Holding every data connection.')
      }
      if (cmd.verb !== 'PASV' || !holding.has(s)) return 'default'
      const l = net.createServer((d) => {
        d.on('error', () => {})
        kept.push(d)
      })
      kept.push(l)
      await new Promise<void>((r) => l.listen(0, '127.0.0.1', r))
      const dport = (l.address() as net.AddressInfo).port
      return s.write(`227 Entering Passive Mode (127,0,0,1,${dport >> 8},${dport & 255}).`)
    },
  })
  t.teardown(async () => {
    for (const x of kept) {
      if (x instanceof net.Socket) x.destroy()
      else x.close()
    }
    await server.close()
  })
  return server
}

t.test('finding 10f: a session holds at most --max-leases-per-session (default 4) leases; the next PASV gets 425, lease_limit', async (t) => {
  const file = randomBytes(100_000)
  const server = await plainServer(t, 27486, file)
  // Ten ports: the fifth PASV fails for the lease limit, not for an empty pool.
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '27500-27509'])
  t.teardown(() => p.close())
  const c = await login(p)
  t.teardown(() => c.close())
  t.equal((await send(c, 'SITE HOLD')).code, 200, 'the server keeps every data connection of this session open')
  const held: net.Socket[] = []
  t.teardown(() => held.forEach((s) => s.destroy()))
  for (let i = 1; i <= 4; i++) {
    const r = await send(c, 'PASV')
    t.equal(r.code, 227, `PASV ${i}: 227`)
    if (r.code !== 227) return
    // Connected and kept, never used: a lease in use, not one a new PASV replaces.
    const ep = pasvEndpoint(r.text)
    const s = net.connect(ep)
    s.on('error', () => {})
    held.push(s)
    await new Promise((r) => s.once('connect', r))
  }
  t.ok(await waitFor(() => p.proxy.pool.inUse === 4, 2000), `four pool ports leased (${p.proxy.pool.inUse})`)
  const fifth = await send(c, 'PASV')
  t.equal(fifth.code, 425, `the fifth PASV gets 425 (${fifth.text})`)
  t.equal(await failures(p, 'lease_limit'), 1, 'ftp_proxy_data_connection_failures_total{reason="lease_limit"} is 1')
  t.equal(await failures(p, 'pool_exhausted'), 0, 'not counted as pool_exhausted')
  t.equal(p.proxy.pool.inUse, 4, 'still four pool ports leased, six free')
  // Another session is not limited by this one.
  const other = await login(p)
  t.teardown(() => other.close())
  const ep = pasvEndpoint((await other.cmd('PASV')).text)
  const data = readAll(ep.host, ep.port)
  t.equal((await send(other, 'RETR f.bin')).code, 226, 'another session transfers')
  t.equal(sha(await data), sha(file), 'with equal bytes')
  c.close()
  held.forEach((s) => s.destroy())
  await send(other, 'QUIT')
  t.ok(await waitFor(() => p.proxy.sessionCount === 0 && p.proxy.pool.inUse === 0, 10_000), 'everything released at the end')
})

t.test('finding 10f: 100 sessions from one address, each holding one unused PASV, cannot empty a 100-port pool (--max-leases-per-client, default 50)', async (t) => {
  const file = randomBytes(100_000)
  const server = await plainServer(t, 27487, file)
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '27500-27599'], 'info')
  t.teardown(() => p.close())
  t.equal(p.proxy.pool.size, 100, 'a pool of 100 ports')
  const sessions: RawFtp[] = []
  t.teardown(() => sessions.forEach((s) => s.close()))
  const codes: number[] = []
  for (let i = 0; i < 100; i++) {
    const c = await login(p, '127.0.0.1')
    sessions.push(c)
    codes.push((await send(c, 'PASV')).code)
  }
  const ok = codes.filter((x) => x === 227).length
  t.equal(ok, 50, `50 of the 100 PASV get 227 (227: ${ok}, 425: ${codes.filter((x) => x === 425).length}, other: ${codes.filter((x) => x !== 227 && x !== 425).length})`)
  t.equal(codes.filter((x) => x === 425).length, 50, 'the other 50 get 425')
  t.equal(await failures(p, 'lease_limit'), 50, 'failures{reason="lease_limit"} is 50')
  t.equal(p.proxy.pool.inUse, 50, 'half the pool is leased, half is free')
  // A client at another address still gets a port, and a working transfer.
  const other = await login(p, '127.0.0.2')
  t.teardown(() => other.close())
  const r = await send(other, 'PASV')
  t.equal(r.code, 227, `a client from 127.0.0.2 still gets a 227 (${r.text})`)
  if (r.code === 227) {
    const ep = pasvEndpoint(r.text)
    const data = readAll(ep.host, ep.port, '127.0.0.2')
    t.equal((await send(other, 'RETR f.bin')).code, 226, 'and its RETR answers 226')
    t.equal(sha(await data), sha(file), 'with equal bytes')
  }
  t.equal(await failures(p, 'pool_exhausted'), 0, 'the pool was never exhausted')
  sessions.forEach((s) => s.close())
  other.close()
  t.ok(await waitFor(() => p.proxy.sessionCount === 0 && p.proxy.pool.inUse === 0, 10_000), 'everything released at the end')
})

// The namespace scenario: plain JavaScript that imports the BUILT proxy (dist/) of the checkout this
// test belongs to, run with `ip netns exec` inside a namespace whose loopback carries fd00:27::1
// (the proxy and a tiny server), fd00:27:0:1::a, ::b, ::c (one /64) and fd00:27:0:2::a (another).
// It prints one JSON object: per scenario, what each client got, or the error that stopped it.
const NETNS_SCENARIO = String.raw`
import net from 'node:net'
const [distUrl, pinoUrl] = process.argv.slice(2)
const { loadConfig } = await import(distUrl + '/config.js')
const { ProxyServer } = await import(distUrl + '/proxy/server.js')
const { pino } = await import(pinoUrl)
setTimeout(() => { console.error('scenario: no end within 60 s'); process.exit(3) }, 60_000).unref()

const HOST = 'fd00:27::1'
const SAME_A = 'fd00:27:0:1::a', SAME_B = 'fd00:27:0:1::b', SAME_C = 'fd00:27:0:1::c', OTHER = 'fd00:27:0:2::a'

// A tiny FTP server: 220, USER -> 230, EPSV -> a listener and 229, QUIT -> 221, else 200.
const dataListeners = []
const upstream = net.createServer((sock) => {
  sock.on('error', () => {})
  sock.write('220 tiny\r\n')
  let buf = ''
  let chain = Promise.resolve()
  sock.on('data', (b) => {
    buf += b.toString('latin1')
    for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i).trim()
      buf = buf.slice(i + 1)
      chain = chain.then(async () => {
        const verb = line.split(' ')[0].toUpperCase()
        if (verb === 'USER') sock.write('230 ok\r\n')
        else if (verb === 'EPSV') {
          const l = net.createServer((d) => d.on('error', () => {}))
          dataListeners.push(l)
          await new Promise((r) => l.listen(0, HOST, r))
          sock.write('229 Entering Extended Passive Mode (|||' + l.address().port + '|)\r\n')
        } else if (verb === 'QUIT') sock.end('221 bye\r\n')
        else sock.write('200 ok\r\n')
      })
    }
  })
})
await new Promise((r) => upstream.listen(27481, HOST, r))

/** A control connection from 'from' that reads reply lines. */
async function connect(port, from) {
  const s = net.connect({ host: HOST, port, localAddress: from })
  s.on('error', () => {})
  let buf = ''
  const waiting = []
  const lines = []
  s.on('data', (b) => {
    buf += b.toString('latin1')
    for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
      lines.push(buf.slice(0, i).trim())
      buf = buf.slice(i + 1)
    }
    while (lines.length > 0 && waiting.length > 0) waiting.shift()(lines.shift())
  })
  s.on('close', () => { while (waiting.length > 0) waiting.shift()('closed') })
  await new Promise((r, j) => { s.once('connect', r); s.once('error', j) })
  const reply = () => lines.length > 0 ? Promise.resolve(lines.shift()) : new Promise((r) => {
    waiting.push(r)
    setTimeout(() => r('no reply'), 5000).unref()
  })
  return { s, reply, cmd: (line) => { s.write(line + '\r\n'); return reply() } }
}
const code = (line) => /^\d{3}/.test(line) ? Number(line.slice(0, 3)) : line

async function withProxy(args, run) {
  try {
    const config = loadConfig(['--listen', '[' + HOST + ']:0', '--upstream', '[' + HOST + ']:27481', '--passive-ports', '27500-27509', ...args], {})
    const proxy = new ProxyServer({ config, logger: pino({ level: 'silent' }) })
    await proxy.listen()
    const port = proxy.addresses()[0].port
    const open = []
    try {
      return await run(port, open)
    } finally {
      for (const c of open) c.s.destroy()
      await proxy.close(0)
    }
  } catch (err) {
    return { error: String(err && err.message || err) }
  }
}

async function sessions(port, open) {
  const got = {}
  for (const [name, from] of [['a', SAME_A], ['b', SAME_B], ['c', SAME_C], ['other', OTHER]]) {
    const c = await connect(port, from)
    open.push(c)
    got[name] = code(await c.reply())
  }
  return got
}

async function leases(port, open) {
  const got = {}
  for (const [name, from] of [['a', SAME_A], ['b', SAME_B], ['other', OTHER]]) {
    const c = await connect(port, from)
    open.push(c)
    const greeting = code(await c.reply())
    const user = code(await c.cmd('USER x'))
    got[name] = greeting === 220 && user === 230 ? code(await c.cmd('EPSV')) : 'login: ' + greeting + ' ' + user
  }
  return got
}

const out = {
  sessionsDefault: await withProxy(['--max-sessions-per-client', '2'], sessions),
  sessionsPrefix128: await withProxy(['--max-sessions-per-client', '2', '--client-ipv6-prefix', '128'], sessions),
  leasesDefault: await withProxy(['--max-leases-per-client', '1'], leases),
}
for (const l of dataListeners) l.close()
upstream.close()
process.stdout.write(JSON.stringify(out) + '\n')
process.exit(0)
`

t.test('finding 10f: IPv6 clients are grouped by /64 for the per-client limits (in a network namespace)', async (t) => {
  // Missing tools fail here (findBinary throws), they never skip.
  findBinary('ip')
  const ns = `fpp-v6prefix-${process.pid}`
  const ip = async (...args: string[]): Promise<void> => {
    const r = await runProcess('ip', args, { timeoutMs: 10_000 })
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`)
  }
  await ip('netns', 'add', ns)
  t.teardown(() => ip('netns', 'delete', ns))
  await ip('-n', ns, 'link', 'set', 'lo', 'up')
  for (const a of ['fd00:27::1', 'fd00:27:0:1::a', 'fd00:27:0:1::b', 'fd00:27:0:1::c', 'fd00:27:0:2::a']) {
    await ip('-n', ns, 'addr', 'add', `${a}/64`, 'dev', 'lo', 'nodad')
  }
  const tmp = await mkdtemp(join(tmpdir(), 'fpp-v6prefix-'))
  t.teardown(() => rm(tmp, { recursive: true, force: true }))
  const script = join(tmp, 'scenario.mjs')
  await writeFile(script, NETNS_SCENARIO)
  const repo = fileURLToPath(new URL('../../', import.meta.url))
  const distUrl = pathToFileURL(join(repo, 'dist')).href
  const pinoUrl = pathToFileURL(createRequire(import.meta.url).resolve('pino')).href
  const r = await runProcess('ip', ['netns', 'exec', ns, process.execPath, script, distUrl, pinoUrl], { timeoutMs: 90_000 })
  t.equal(r.code, 0, `the scenario ran in the namespace: ${r.stderr}`)
  const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Record<string, Record<string, unknown>>

  t.comment(`the namespace scenario: ${JSON.stringify(out)}`)
  t.same(
    out['sessionsDefault'],
    { a: 220, b: 220, c: 421, other: 220 },
    '--max-sessions-per-client 2, default prefix: the third client of one /64 gets 421, a client of another /64 is served',
  )
  t.same(
    out['sessionsPrefix128'],
    { a: 220, b: 220, c: 220, other: 220 },
    '--client-ipv6-prefix 128: each address counts on its own',
  )
  t.same(
    out['leasesDefault'],
    { a: 229, b: 425, other: 229 },
    '--max-leases-per-client 1: a second client of the same /64 gets 425 for its EPSV, another /64 gets its lease',
  )
})

// ---- finding 11 -------------------------------------------------------------------------------

t.test("finding 11: a client that hangs up without QUIT is logged as 'client closed the connection'", async (t) => {
  const file = randomBytes(50_000)
  const server = await startFaultServer({
    port: 27488,
    files: { 'f.bin': file },
    onCommand: (cmd, s) => {
      if (cmd.verb !== 'SITE' || cmd.arg !== 'BYE') return 'default'
      s.control.end()
      return undefined
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '27490-27491'])
  t.teardown(() => p.close())

  const reasonOf = async (sid: string): Promise<string | null> => {
    await waitFor(() => p.logs.some((l) => l.msg === 'session closed' && l.sid === sid), 5000)
    const line = p.logs.find((l) => l.msg === 'session closed' && l.sid === sid)
    return line === undefined ? null : String(line.reason)
  }
  const sidOf = (): string => String(p.logs.filter((l) => l.msg === 'session opened').pop()?.sid)

  const hangUps: Array<[string, (s: net.Socket) => void]> = [
    ['FIN (end)', (s) => s.end()],
    ['destroy', (s) => s.destroy()],
    ['reset', (s) => s.resetAndDestroy()],
  ]
  for (const [how, hangUp] of hangUps) {
    const c = await login(p)
    const sid = sidOf()
    hangUp(c.socket)
    t.equal(await reasonOf(sid), 'client closed the connection', `a client that hangs up by ${how} after login`)
  }
  // A session in the middle of a transfer setup: a PASV leased, the client leaves.
  const c = await login(p)
  const sid = sidOf()
  t.equal((await send(c, 'PASV')).code, 227, 'PASV')
  c.socket.end()
  t.equal(await reasonOf(sid), 'client closed the connection', 'a client that hangs up holding a PASV')
  // The server's own hang-up is still named as the server's.
  const s = await login(p)
  const ssid = sidOf()
  s.socket.write('SITE BYE\r\n')
  t.equal(await reasonOf(ssid), 'server closed the connection', 'a server that hangs up is still named')
  s.close()
  t.ok(await waitFor(() => p.proxy.sessionCount === 0 && p.proxy.pool.inUse === 0, 5000), 'nothing left')
  await freshTransfer(t, p, 'f.bin', file)
})
