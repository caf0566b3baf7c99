// The server sends what no FTP server should: a 1 MiB line, binary garbage with and without LF,
// and 227/229 replies with bad numbers. The proxy must stay bounded (--max-line-length, 8192
// by default), close with a 421 that says why when a line is too long, answer a bad passive
// reply with 425 and go on, and release everything. Ports: 26300-26399.
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { startFtpServer, type Endpoint } from '../../src/demo/ftp-server.js'
import { metricValue, startProxy, type TestProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp, readAll } from '../fixtures/raw-ftp.js'
import { baseline, endsClean, sha, startFaultServer, waitFor, type FaultServer } from './helpers.js'

t.setTimeout(60_000)
const SMALL = randomBytes(200_000)
const MIB = 1024 * 1024

/** Random bytes with no LF, and with no line starting with a digit (never a reply code). */
function garbage(bytes: number, lfEvery: number | null): Buffer {
  const b = randomBytes(bytes)
  for (let i = 0; i < b.length; i++) if (b[i] === 0x0a) b[i] = 0x0b
  if (lfEvery !== null) for (let i = lfEvery - 1; i < b.length; i += lfEvery) b[i] = 0x0a
  for (let i = 0; i < b.length; i++) {
    const startOfLine = i === 0 || b[i - 1] === 0x0a
    if (startOfLine && b[i]! >= 0x30 && b[i]! <= 0x39) b[i] = 0x41
  }
  return b
}

const GARBAGE_LINES = garbage(64_000, 1000) // 64 lines of 1000 bytes, each ending in LF
const GARBAGE_NO_LF = garbage(MIB, null)
const GARBAGE_SHORT = garbage(100, null)

/** The server's answer to `SITE <arg>`: raw bytes, then maybe a close. */
const answers: Record<string, { bytes: Buffer; close?: boolean }> = {
  LONG: { bytes: Buffer.concat([Buffer.alloc(MIB, 'A'), Buffer.from('\r\n')]) },
  LONG200: { bytes: Buffer.concat([Buffer.from('200 '), Buffer.alloc(MIB, 'A'), Buffer.from('\r\n')]) },
  // A multi-line reply of short lines, 1 MiB in all: far over the 64 KiB the proxy reads whole
  // (227/229), so it must stream through (a STAT of a large directory, a long HELP).
  MULTI: { bytes: Buffer.from(`200-start\r\n${' x'.repeat(40).concat('\r\n').repeat(MIB / 82)}200 end\r\n`) },
  GARBAGE: { bytes: Buffer.concat([GARBAGE_LINES, Buffer.from('200 after the garbage\r\n')]) },
  NOLF: { bytes: GARBAGE_NO_LF },
  SHORT: { bytes: GARBAGE_SHORT, close: true },
}

interface Env {
  server: FaultServer
  p: TestProxy
  fds: number
  greeting: { long: boolean }
}

let n = 0
async function setup(t: Test): Promise<Env> {
  const i = n++
  const greeting = { long: false }
  const server = await startFaultServer({
    port: 26300 + i,
    files: { 'small.bin': SMALL },
    greeting: () => (greeting.long ? answers.LONG!.bytes : '220 fault server'),
    onCommand: (cmd, s) => {
      const answer = cmd.verb === 'SITE' ? answers[cmd.arg] : undefined
      if (answer === undefined) return 'default'
      s.write(answer.bytes)
      if (answer.close === true) s.control.end()
      return undefined
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', `${26310 + i * 10}-${26319 + i * 10}`])
  t.teardown(() => p.close())
  const fds = await baseline(t, p, 'small.bin', SMALL)
  return { server, p, fds, greeting }
}

/** Logs in, sends `SITE what`, and collects every byte the client gets until the proxy closes (bounded). */
async function siteAndCollect(p: TestProxy, what: string, login = true): Promise<{ bytes: Buffer; closed: boolean; c: RawFtp }> {
  const c = await RawFtp.connect(p.host, p.port)
  if (login) await c.login()
  const chunks: Buffer[] = []
  c.socket.on('data', (d: Buffer) => chunks.push(d))
  let closed = false
  c.socket.once('close', () => (closed = true))
  c.socket.write(`SITE ${what}\r\n`)
  await waitFor(() => closed, 3000)
  return { bytes: Buffer.concat(chunks), closed, c }
}

for (const [what, limit] of [
  ['LONG', 8192],
  ['LONG200', 8192],
  ['NOLF', 8192],
] as const) {
  t.test(`the server sends ${what === 'NOLF' ? '1 MiB of garbage without LF' : 'a 1 MiB line'} (${what}): 421 and close`, async (t) => {
    const { server, p, fds } = await setup(t)
    const heapBefore = process.memoryUsage().heapUsed
    const { bytes, closed, c } = await siteAndCollect(p, what)
    t.equal(
      bytes.toString('latin1'),
      `421 The FTP server sent a reply longer than ${limit} bytes; closing.\r\n`,
      'the client gets only the 421, none of the long reply',
    )
    t.ok(closed, 'then the proxy closes the control connection')
    t.ok(await waitFor(() => server.sessions === 0, 3000), "and the server's")
    t.ok(p.logs.some((l) => l.msg === 'server sent a reply over the limit; closing' && l.limit === limit), 'logged as a warning with the limit')
    await waitFor(() => p.proxy.sessionCount === 0)
    const reason = String(p.logs.find((l) => l.msg === 'session closed' && l.sid === 's2')?.reason)
    t.match(reason, /server|reply|long/, `the session's close names the server's long reply (logged: "${reason}")`)
    t.ok(process.memoryUsage().heapUsed - heapBefore < 32 * MIB, 'the proxy did not buffer the whole line (heap grew < 32 MiB)')
    c.close()
    await endsClean(t, p, fds, 'small.bin', SMALL)
  })
}

t.test('the greeting is a 1 MiB line: 421 and close', async (t) => {
  const { p, fds, greeting } = await setup(t)
  greeting.long = true
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  const r = await c.reply(5000)
  t.equal(r?.code, 421, 'the client gets 421')
  t.equal(r?.text, '421 The FTP server sent a reply longer than 8192 bytes; closing.', 'which says why')
  t.equal(await c.reply(3000), null, 'then the proxy closes')
  c.close()
  greeting.long = false
  await endsClean(t, p, fds, 'small.bin', SMALL)
})

t.test('the server sends a 1 MiB multi-line reply of short lines: passed through whole, the session goes on', async (t) => {
  const { p, fds } = await setup(t)
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  const heapBefore = process.memoryUsage().heapUsed
  const chunks: Buffer[] = []
  c.socket.on('data', (d: Buffer) => chunks.push(d))
  const r = await c.cmd('SITE MULTI')
  t.equal(r.code, 200, 'the reply ends as the server ended it')
  t.equal(sha(Buffer.concat(chunks)), sha(answers.MULTI!.bytes), 'every byte of it, unchanged')
  t.ok(process.memoryUsage().heapUsed - heapBefore < 32 * MIB, 'streamed, not buffered whole (heap grew < 32 MiB)')
  t.equal((await c.cmd('NOOP')).code, 200, 'the session goes on')
  await c.cmd('QUIT')
  c.close()
  await endsClean(t, p, fds, 'small.bin', SMALL)
})

t.test('the server sends 64 kB of binary garbage in lines, then its reply: passed through, the session goes on', async (t) => {
  const { p, fds } = await setup(t)
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  const chunks: Buffer[] = []
  c.socket.on('data', (d: Buffer) => chunks.push(d))
  const r = await c.cmd('SITE GARBAGE')
  t.equal(r.code, 200, 'the reply after the garbage answers the command')
  const got = Buffer.concat(chunks)
  t.equal(sha(got), sha(answers.GARBAGE!.bytes), 'the client got every byte unchanged (RFC 959 leaves them to the client)')
  t.equal((await c.cmd('NOOP')).code, 200, 'the session goes on: the next reply pairs with the next command')
  const ep = pasvEndpoint((await c.cmd('PASV')).text)
  const data = readAll(ep.host, ep.port)
  t.equal((await c.cmd('RETR small.bin')).code, 226, 'and transfers')
  t.equal(sha(await data), sha(SMALL), 'with equal bytes')
  await c.cmd('QUIT')
  c.close()
  await endsClean(t, p, fds, 'small.bin', SMALL)
})

t.test('the server sends 100 bytes of garbage without LF, then closes: the client sees the close', async (t) => {
  const { p, fds } = await setup(t)
  const { bytes, closed, c } = await siteAndCollect(p, 'SHORT')
  t.ok(closed, 'the control connection closes')
  t.equal(bytes.length, 0, 'the unfinished line is not passed on (the proxy forwards whole lines only)')
  c.close()
  await endsClean(t, p, fds, 'small.bin', SMALL)
})

// ---- bad passive replies, through the demo server's pasvReply/epsvReply ----

const tuple = (h: string, p: string): string => `227 Entering Passive Mode (${h},${p}).`
const BAD_227: Array<[string, (real: Endpoint) => string, RegExp]> = [
  ['a value of 999', () => tuple('999,0,0,1', '4,1'), /value over 255/],
  ['p1 of 256', (r) => tuple('127,0,0,1', `256,${r.port & 255}`), /value over 255/],
  ['port 0', () => tuple('127,0,0,1', '0,0'), /port 0/],
  ['no tuple', () => '227 Entering Passive Mode.', /names no/],
  ['five numbers', () => '227 Entering Passive Mode (127,0,0,1,4).', /names no/],
  ['seven numbers', () => '227 Entering Passive Mode (127,0,0,1,4,1,7).', /names no/],
  ['a sign', () => '227 Entering Passive Mode (-127,0,0,1,4,1).', /names no/],
  ['letters', () => '227 Entering Passive Mode (a,b,c,d,e,f).', /names no/],
]
const BAD_229: Array<[string, () => string, RegExp]> = [
  ['port 0', () => '229 Entering Extended Passive Mode (|||0|)', /out of range/],
  ['port 99999', () => '229 Entering Extended Passive Mode (|||99999|)', /out of range|not a number/],
  ['letters', () => '229 Entering Extended Passive Mode (|||abc|)', /not a number/],
  ['no field', () => '229 Entering Extended Passive Mode', /names no/],
]

t.test('227 and 229 with bad numbers: 425 that says why, counted, the session goes on', async (t) => {
  let next227: ((real: Endpoint) => string) | null = null
  let next229: (() => string) | null = null
  const canonical227 = (r: Endpoint): string => tuple(r.host.replaceAll('.', ','), `${r.port >> 8},${r.port & 255}`)
  const server = await startFtpServer({
    port: 26390,
    files: { 'small.bin': SMALL },
    pasvReply: (real) => (next227 ?? canonical227)(real),
    epsvReply: (real) => (next229 === null ? `229 Entering Extended Passive Mode (|||${real.port}|)` : next229()),
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '26391-26399'])
  t.teardown(() => p.close())
  const fds = await baseline(t, p, 'small.bin', SMALL)

  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  for (const [what, reply, why] of BAD_227) {
    next227 = reply
    const r = await c.cmd('PASV')
    t.equal(r.code, 425, `227 with ${what}: 425`)
    t.match(r.text, /^425 Can't open data connection: the FTP server's passive reply is invalid \(bad passive reply: /, 'which says the passive reply is invalid')
    t.match(r.text, why, 'and why')
    t.equal(p.proxy.pool.inUse, 0, 'no pool port taken')
  }
  for (const [what, reply, why] of BAD_229) {
    next229 = reply
    const r = await c.cmd('EPSV')
    t.equal(r.code, 425, `229 with ${what}: 425`)
    t.match(r.text, why, 'which says why')
  }
  next227 = null
  next229 = null
  const bad = BAD_227.length + BAD_229.length
  t.equal(await metricValue(p, 'ftp_proxy_data_connection_failures_total', { reason: 'bad_passive_reply' }), bad, `each counted as failed{bad_passive_reply} (${bad})`)
  const logged = p.logs.filter((l) => l.msg === 'data connection failed' && l.reason === 'bad_passive_reply')
  t.equal(logged.length, bad, "each logged with the server's text")
  t.ok(logged.every((l) => typeof l.fromServer === 'string' && /^22[79] /.test(l.fromServer)), 'fromServer is the reply as sent')
  t.equal((await c.cmd('NOOP')).code, 200, 'the session goes on')
  const ep = pasvEndpoint((await c.cmd('PASV')).text)
  const data = readAll(ep.host, ep.port)
  t.equal((await c.cmd('RETR small.bin')).code, 226, 'and a good PASV/RETR works in the same session')
  t.equal(sha(await data), sha(SMALL), 'with equal bytes')
  await c.cmd('QUIT')
  c.close()
  await endsClean(t, p, fds, 'small.bin', SMALL)
})
