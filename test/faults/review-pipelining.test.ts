// Hostile review of 5f3b1bf~1: commands pipelined behind a passive request (several commands in
// one write, as a client that does not wait for each reply sends them), and an ABOR whose LF
// comes in a later segment. In-process proxy, real sockets on loopback, a scripted server that
// records every command line it gets.
//
// - defect 2a: `PASV` (its 227 left unused), then `PASV\r\nRETR f\r\n` in one write. The RETR was
//   attached to the first, unused lease, while the client connected to the second 227's port and
//   read every byte: after --data-accept-timeout the client got `425 ... did not connect`
//   instead of the server's 226. Fixed: commands behind a passive request wait for its answer.
// - defect 2b: `PASV\r\nRETR f\r\n` in one write, the client reading its data socket to the end
//   but keeping it open (half-open): the RETR went out before the 227 and belonged to no lease,
//   the lease waited for both legs to close: its pool port stayed in use and the session's idle
//   timeout never fired.
// - defect 3a: the server answers EPSV with 500; `EPSV\r\nSTAT\r\n` in one write, and the STAT
//   reply is 400 KiB: the PASV the proxy retries the EPSV with went out behind the STAT, whose
//   reply filled the held-reply limit before the 227 could be read: the client got nothing until
//   the idle timeout.
// - defect 3b: `EPSV\r\nPASV\r\n` in one write, the server answering 500 then 227s: the retried
//   PASV went out after the client's PASV, its 227 replaced the client's lease: the client's last
//   passive port refused connections.
// - defect 10: `ABOR\r`, then `\n` in a later segment: the LF was sent to the server as an empty
//   command, whose reply was then paired with the client's next command.
//
// Ports: scripted servers 28200-28209, pools 28300-28319.
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import t from 'tap'
import { startProxy, type TestProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp, type RawReply } from '../fixtures/raw-ftp.js'
import { RawSocket, sha, sleep, startFaultServer, waitFor } from './helpers.js'
import { readData, retrLikeVsftpd } from './review-helpers.js'

t.setTimeout(120_000)

const FILE = randomBytes(300_000)
const files = { 'f.bin': FILE }

/** The next final reply (1xx skipped), or code 0 with the reason when none came in time. */
async function finalReply(c: RawFtp, ms = 15_000): Promise<RawReply> {
  const end = Date.now() + ms
  for (;;) {
    const r = await c.reply(Math.max(end - Date.now(), 1)).catch((err: Error) => ({ code: 0, text: err.message }))
    if (r === null) return { code: 0, text: 'connection closed' }
    if (r.code === 0 || r.code >= 200) return r
  }
}

/** Commands the server got since `from`, without the login. */
const since = (commands: readonly string[], from: number): string[] => commands.slice(from).filter((l) => !/^(USER|PASS)\b/.test(l))

async function login(p: TestProxy): Promise<RawFtp> {
  const c = await RawFtp.connect(p.host, p.port)
  await c.login()
  return c
}

t.test('defect 2a: PASV (unused), then PASV and RETR in one write: the RETR uses the second lease', async (t) => {
  const server = await startFaultServer({ port: 28200, files })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '28300-28303', '--data-accept-timeout', '3s'])
  t.teardown(() => p.close())
  const c = await login(p)
  t.teardown(() => c.close())

  const first = await c.cmd('PASV')
  t.equal(first.code, 227, 'the first PASV is answered 227 (and left unused)')
  c.socket.write('PASV\r\nRETR f.bin\r\n')
  const second = await finalReply(c)
  t.equal(second.code, 227, `the second PASV is answered 227 (${second.text})`)
  if (second.code !== 227) return
  const ep = pasvEndpoint(second.text)
  // (The first lease is replaced and its port freed, so the pool may hand out the same port again.)
  const data = await readData(ep.host, ep.port)
  t.equal(data.error, null, 'the data connection to the second port ends cleanly')
  t.equal(sha(data.bytes), sha(FILE), 'the client reads every byte of the file there (sha256)')
  const done = await finalReply(c)
  t.equal(done.code, 226, `the RETR is answered with the server's 226 (${done.text})`)
  t.equal((await c.cmd('QUIT')).code, 221, 'QUIT answered 221')
  await waitFor(() => p.proxy.sessionCount === 0 && p.proxy.pool.inUse === 0)
  t.equal(p.proxy.pool.inUse, 0, 'no pool port in use after the session')
})

t.test('defect 2b: PASV and RETR in one write, the client keeps its data socket half-open: the lease ends, the idle timeout fires', async (t) => {
  const server = await startFaultServer({ port: 28201, files, onCommand: retrLikeVsftpd(files) })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '28304-28307', '--idle-timeout', '3s'])
  t.teardown(() => p.close())
  const c = await login(p)
  t.teardown(() => c.close())

  c.socket.write('PASV\r\nRETR f.bin\r\n')
  const pasv = await finalReply(c)
  t.equal(pasv.code, 227, `PASV answered 227 (${pasv.text})`)
  if (pasv.code !== 227) return
  const ep = pasvEndpoint(pasv.text)
  // Read to the end, never close: the proxy's FIN arrives, the client's never goes.
  const chunks: Buffer[] = []
  const s = net.connect({ host: ep.host, port: ep.port, allowHalfOpen: true })
  s.on('error', () => {})
  t.teardown(() => s.destroy())
  let ended = false
  s.on('data', (b: Buffer) => chunks.push(b))
  s.on('end', () => (ended = true))
  const done = await finalReply(c)
  t.equal(done.code, 226, `RETR answered 226 (${done.text})`)
  await waitFor(() => ended, 5000)
  t.equal(sha(Buffer.concat(chunks)), sha(FILE), 'the client has every byte (sha256) and the end of the data')
  const at = Date.now()

  t.ok(await waitFor(() => p.proxy.pool.inUse === 0, 3000), `the pool port is released while the client keeps its data socket (in use: ${p.proxy.pool.inUse})`)
  const idle = await finalReply(c, 10_000)
  t.equal(idle.code, 421, `the idle timeout (3 s) closes the session with 421 (${idle.text})`)
  t.ok(Date.now() - at < 8000, `within the idle timeout + 5 s of the 226 (${((Date.now() - at) / 1000).toFixed(1)} s)`)
  await waitFor(() => p.proxy.sessionCount === 0, 5000)
  t.equal(p.proxy.sessionCount, 0, 'no session left')
  t.equal(p.proxy.pool.inUse, 0, 'no pool port in use')
})

t.test('defect 3a: EPSV refused with 500, then STAT with a 400 KiB reply in the same write', async (t) => {
  // The STAT reply: "213-", 4,096 lines of 100 bytes, "213 End".
  const body = Array.from({ length: 4096 }, (_, i) => ` ${String(i).padStart(6, '0')} ${'x'.repeat(90)}\r\n`).join('')
  const statReply = Buffer.from(`213-Status follows:\r\n${body}213 End of status.\r\n`, 'latin1')
  const server = await startFaultServer({
    port: 28202,
    files,
    onCommand: (cmd, s) => {
      if (cmd.verb === 'EPSV') return void s.write('500 EPSV not understood.')
      if (cmd.verb === 'STAT') return void s.write(statReply)
      return 'default'
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '28308-28311', '--idle-timeout', '60s'])
  t.teardown(() => p.close())
  const c = await RawSocket.connect(p.host, p.port)
  t.teardown(() => c.close())
  c.socket.write('USER anonymous\r\nPASS x@\r\n')
  t.ok(await c.until('230 '), 'logged in')
  const from = server.commands.length
  const before = c.received.length

  c.socket.write('EPSV\r\nSTAT\r\n')
  const complete = await c.until('213 End of status.\r\n', 15_000)
  t.ok(complete, `the STAT reply reaches the client within 15 s (got ${c.received.length - before} bytes)`)
  const got = c.received.subarray(before).toString('latin1')
  t.match(got, /^229 [^\r\n]*\(\|\|\|\d+\|\)\r\n213-/, 'the EPSV is answered 229 first, then the STAT reply')
  const stat = c.received.subarray(c.received.indexOf('213-', before))
  t.equal(sha(stat), sha(statReply), `the STAT reply arrives byte for byte (${statReply.length} bytes)`)
  t.same(since(server.commands, from), ['EPSV', 'PASV', 'STAT'], 'the server got the retried PASV before the STAT')
})

t.test('defect 3b: EPSV and PASV in one write, the server refusing EPSV with 500: the last passive port works', async (t) => {
  const server = await startFaultServer({
    port: 28203,
    files,
    onCommand: (cmd, s) => (cmd.verb === 'EPSV' ? void s.write('500 EPSV not understood.') : 'default'),
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '28312-28315', '--data-accept-timeout', '3s'])
  t.teardown(() => p.close())
  const c = await login(p)
  t.teardown(() => c.close())
  const from = server.commands.length

  c.socket.write('EPSV\r\nPASV\r\n')
  const epsv = await finalReply(c)
  t.equal(epsv.code, 229, `EPSV answered 229 (${epsv.text})`)
  const pasv = await finalReply(c)
  t.equal(pasv.code, 227, `PASV answered 227 (${pasv.text})`)
  if (pasv.code !== 227) return
  const ep = pasvEndpoint(pasv.text)
  const data = readData(ep.host, ep.port)
  const retr = await c.cmd('RETR f.bin').catch((err: Error) => ({ code: 0, text: err.message }))
  const got = await data
  t.equal(got.error, null, `the client's data connection to the last passive port (${ep.port}) is accepted and ends cleanly`)
  t.equal(retr.code, 226, `RETR answered 226 (${retr.text})`)
  t.equal(sha(got.bytes), sha(FILE), 'the client gets every byte (sha256)')
  t.same(since(server.commands, from), ['EPSV', 'PASV', 'PASV', 'RETR f.bin'], 'the server got EPSV, the retry, the PASV, the RETR')
})

t.test('defect 10: ABOR\\r, then its \\n in a later segment: no empty command reaches the server, replies stay paired', async (t) => {
  const server = await startFaultServer({
    port: 28204,
    files,
    onCommand: (cmd, s) => (cmd.verb === 'ABOR' ? void s.write('226 ABOR command successful.') : 'default'),
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '28316-28319'])
  t.teardown(() => p.close())
  const c = await login(p)
  t.teardown(() => c.close())
  c.socket.setNoDelay(true)
  const from = server.commands.length

  c.socket.write('ABOR\r')
  const abor = await finalReply(c)
  t.same(abor, { code: 226, text: '226 ABOR command successful.' }, "ABOR (ending in a bare CR) is answered with the server's 226")
  c.socket.write('\n')
  await sleep(300)
  const noop = await c.cmd('NOOP').catch((err: Error) => ({ code: 0, text: err.message }))
  t.same(noop, { code: 200, text: '200 NOOP ok.' }, 'the NOOP after it is answered 200 NOOP ok')
  await waitFor(() => since(server.commands, from).includes('NOOP'), 2000)
  t.same(since(server.commands, from), ['ABOR', 'NOOP'], 'the server got ABOR and NOOP, no empty command')
})
