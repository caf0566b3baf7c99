// The client sends what no FTP client should: a 1 MiB line, or its bytes one at a time
// (slowloris). A long line gets `500 Command line too long` and a close, and never reaches the
// server; a command dribbled byte by byte still works; a client that dribbles forever is cut by
// the idle timeout. Ports: 26400-26499.
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { startFtpServer, type FtpServer } from '../../src/demo/ftp-server.js'
import { startProxy, type TestProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp, readAll } from '../fixtures/raw-ftp.js'
import { baseline, endsClean, RawSocket, sha, sleep, waitFor } from './helpers.js'

t.setTimeout(60_000)
const SMALL = randomBytes(200_000)
const MIB = 1024 * 1024

let n = 0
async function setup(t: Test): Promise<{ server: FtpServer; p: TestProxy; fds: number }> {
  const i = n++
  const server = await startFtpServer({ port: 26400 + i, files: { 'small.bin': SMALL } })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', `${26410 + i * 10}-${26419 + i * 10}`, '--idle-timeout', '1s'])
  t.teardown(() => p.close())
  const fds = await baseline(t, p, 'small.bin', SMALL)
  return { server, p, fds }
}

const LONG: Record<string, Buffer> = {
  'a 1 MiB line': Buffer.concat([Buffer.from('STOR '), Buffer.alloc(MIB, 'a'), Buffer.from('\r\n')]),
  '1 MiB without LF': Buffer.alloc(MIB, 'a'),
  'NOOP, then a 1 MiB line in the same write': Buffer.concat([Buffer.from('NOOP\r\n'), Buffer.alloc(MIB, 'a'), Buffer.from('\r\n')]),
}

for (const [what, bytes] of Object.entries(LONG)) {
  t.test(`the client sends ${what}: 500 and close, nothing of it reaches the server`, async (t) => {
    const { server, p, fds } = await setup(t)
    const c = await RawFtp.connect(p.host, p.port)
    t.teardown(() => c.close())
    await c.login()
    const before = server.commands.length
    const heapBefore = process.memoryUsage().heapUsed
    c.socket.write(bytes)
    const replies = []
    for (let i = 0; i < 3; i++) {
      const r = await c.reply(5000)
      replies.push(r)
      if (r === null) break
    }
    t.comment(`the client got ${JSON.stringify(replies)}`)
    const last = replies[replies.length - 2]
    t.equal(last?.text, '500 Command line too long (limit 8192 bytes).', 'the last reply is the 500 that says why')
    t.equal(replies[replies.length - 1], null, 'then the proxy closes the connection')
    t.ok(process.memoryUsage().heapUsed - heapBefore < 32 * MIB, 'the proxy did not buffer the whole line (heap grew < 32 MiB)')
    const reached = server.commands.slice(before)
    t.ok(
      reached.every((l) => l.length < 100),
      `nothing of the long line reached the server (it got ${JSON.stringify(reached)})`,
    )
    const warned = p.logs.filter((l) => l.msg === 'client sent a command line over the limit; closing')
    t.ok(warned.length > 0 && warned.every((l) => l.limit === 8192), 'logged as a warning with the limit')
    // Once: the rest of the line keeps arriving in chunks until the socket is gone, and each
    // chunk must not log again (a client could make the proxy write a warning per 64 KiB).
    t.equal(warned.length, 1, `one warning for the session (${warned.length} logged)`)
    await waitFor(() => p.proxy.sessionCount === 0)
    t.equal(p.logs.find((l) => l.msg === 'session closed' && l.sid === 's2')?.reason, 'client line too long', "the session's close names the reason")
    c.close()
    await endsClean(t, p, fds, 'small.bin', SMALL)
  })
}

/** Writes `text` one byte at a time, `gapMs` apart; stops early if the socket closed. */
async function dribble(s: RawFtp | RawSocket, text: string, gapMs: number): Promise<void> {
  for (const byte of Buffer.from(text)) {
    if (s.socket.destroyed || !s.socket.writable) return
    s.socket.write(Buffer.from([byte]))
    await sleep(gapMs)
  }
}

t.test('slowloris: commands dribbled one byte every 20 ms still work', async (t) => {
  const { p, fds } = await setup(t)
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  t.equal((await c.reply())?.code, 220, 'greeted')
  // Each command takes 300-500 ms to arrive: under the 1 s idle timeout, which counts from the
  // last complete command.
  await dribble(c, 'USER anonymous\r\n', 20)
  t.equal((await c.reply())?.code, 331, 'USER, dribbled, answered 331')
  await dribble(c, 'PASS x@y\r\n', 20)
  t.equal((await c.reply())?.code, 230, 'PASS, dribbled, answered 230')
  await dribble(c, 'PASV\r\n', 20)
  const pasv = await c.reply()
  t.equal(pasv?.code, 227, 'PASV, dribbled, answered 227')
  const ep = pasvEndpoint(pasv?.text ?? '')
  const data = readAll(ep.host, ep.port)
  await dribble(c, 'RETR small.bin\r\n', 20)
  let r = await c.reply()
  if (r?.code === 150) r = await c.reply()
  t.equal(r?.code, 226, 'RETR, dribbled, answered 226')
  t.equal(sha(await data), sha(SMALL), 'with equal bytes')
  c.close()
  await endsClean(t, p, fds, 'small.bin', SMALL)
})

t.test('slowloris: a client that dribbles forever is cut by the idle timeout', async (t) => {
  const { server, p, fds } = await setup(t)
  const c = await RawSocket.connect(p.host, p.port)
  t.teardown(() => c.close())
  t.ok(await c.until('220 '), 'greeted')
  const started = Date.now()
  // One byte every 100 ms, never a LF; bounded at 5 s.
  for (let i = 0; i < 50 && !c.closed; i++) {
    c.socket.write('A')
    await sleep(100)
  }
  const took = Date.now() - started
  t.ok(c.closed, 'the proxy closed the connection')
  t.ok(took < 2500, `about when the 1 s idle timeout says (${took} ms)`)
  t.match(c.received.toString('latin1'), /\r\n421 Idle timeout \(1 s\): closing control connection\.\r\n$/, 'with a 421 that says why')
  t.notOk(server.commands.some((l) => l.startsWith('A')), 'no byte of the unfinished line reached the server')
  c.close()
  await endsClean(t, p, fds, 'small.bin', SMALL)
})
