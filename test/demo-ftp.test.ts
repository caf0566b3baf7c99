import t from 'tap'
import type { Test } from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import type { Socket } from 'node:net'
import { startFtpServer } from '../src/demo/ftp-server.js'
import type { FtpServer, FtpServerOptions } from '../src/demo/ftp-server.js'
import { fetchFile } from '../src/demo/ftp-client.js'

async function ftpServer(t: Test, options: FtpServerOptions = {}): Promise<FtpServer> {
  const server = await startFtpServer(options)
  t.teardown(() => server.close())
  return server
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

/** A control connection driven line by line, keeping everything it received for exact checks. */
class RawControl {
  /** Everything received, latin1, CRLF kept. */
  received = ''
  private unread = ''
  private closed = false
  private wake: (() => void) | undefined

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.toString('latin1')
      this.unread += chunk.toString('latin1')
      this.wake?.()
    })
    socket.on('close', () => {
      this.closed = true
      this.wake?.()
    })
  }

  static async open(t: Test, port: number): Promise<RawControl> {
    const socket = connect(port, '127.0.0.1')
    t.teardown(() => socket.destroy())
    await once(socket, 'connect')
    const control = new RawControl(socket)
    await control.reply()
    return control
  }

  async login(): Promise<void> {
    await this.command('USER anonymous')
    await this.command('PASS guest@')
  }

  send(line: string | Buffer): void {
    this.socket.write(typeof line === 'string' ? `${line}\r\n` : line)
  }

  async command(line: string): Promise<string[]> {
    this.send(line)
    return this.reply()
  }

  /** The next whole reply, as lines; RFC 959 4.2 multi-line replies end on "<code><SP>". */
  async reply(): Promise<string[]> {
    for (;;) {
      const lines = this.unread.split('\r\n').slice(0, -1)
      const first = lines[0]
      if (first !== undefined) {
        const code = first.slice(0, 3)
        const end = first[3] === '-' ? lines.findIndex((line, i) => i > 0 && line.startsWith(`${code} `)) : 0
        if (end !== -1) {
          const reply = lines.slice(0, end + 1)
          this.unread = this.unread.slice(reply.join('\r\n').length + 2)
          return reply
        }
      }
      if (this.closed) throw new Error(`control connection closed; unread: ${JSON.stringify(this.unread)}`)
      await new Promise<void>((resolve) => {
        this.wake = resolve
      })
    }
  }

  /** PASV, and the address in its 227. */
  async pasv(): Promise<{ host: string; port: number }> {
    const [reply = ''] = await this.command('PASV')
    const match = /^227 .*\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(reply)
    if (!match) throw new Error(`not a 227: ${reply}`)
    const [h1, h2, h3, h4, p1 = 0, p2 = 0] = match.slice(1).map(Number)
    return { host: `${h1}.${h2}.${h3}.${h4}`, port: p1 * 256 + p2 }
  }

  /** PASV, then a data connection to the address in the 227. */
  async passiveData(t: Test): Promise<Socket> {
    const { host, port } = await this.pasv()
    return dataConnection(t, host, port)
  }
}

async function dataConnection(t: Test, host: string, port: number, localAddress?: string): Promise<Socket> {
  const data = connect({ host, port, ...(localAddress === undefined ? {} : { localAddress }) })
  t.teardown(() => data.destroy())
  await once(data, 'connect')
  return data
}

async function readAll(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  await once(socket, 'end')
  return Buffer.concat(chunks)
}

t.test('fetchFile gets a file byte for byte via PASV and via EPSV', async (t) => {
  const content = randomBytes(300 * 1024)
  const server = await ftpServer(t, { files: { 'pub/data.bin': content } })
  for (const mode of ['pasv', 'epsv'] as const) {
    const options = { host: server.host, port: server.port, path: '/pub/data.bin', mode, password: 'hunter2' }
    const result = await fetchFile(options)
    t.equal(result.error, undefined, `${mode}: no error`)
    t.ok(result.ok, `${mode}: ok`)
    t.equal(sha256(result.data ?? Buffer.alloc(0)), sha256(content), `${mode}: same bytes`)
    t.ok(result.transcript.includes('> PASS ****'), `${mode}: password masked`)
    t.notOk(result.transcript.some((line) => line.includes('hunter2')), `${mode}: password nowhere in the transcript`)
    t.match(result.transcript, [/^< 220 /], `${mode}: starts with the greeting`)
    t.equal(result.transcript.at(-1), '< 221 Goodbye.', `${mode}: ends with QUIT answered`)
    t.ok(result.transcript.includes(mode === 'pasv' ? '> PASV' : '> EPSV'), `${mode}: used ${mode}`)
  }
  t.ok(server.commands.includes('PASS hunter2'), 'the server records raw command lines')
})

t.test('advertiseAddress 127.0.0.99: the 227 names it and the data connect is refused, like PRODFTP', async (t) => {
  const server = await ftpServer(t, { advertiseAddress: '127.0.0.99', files: { 'a.txt': Buffer.from('a') } })
  const result = await fetchFile({ host: server.host, port: server.port, path: 'a.txt' })
  t.equal(result.ok, false)
  t.match(result.error, /^data connection to 127\.0\.0\.99:\d+ failed: .*ECONNREFUSED/)
  t.ok(
    result.transcript.some((line) => /^< 227 Entering Passive Mode \(127,0,0,99,\d+,\d+\)\.$/.test(line)),
    'the 227 names 127,0,0,99',
  )
  t.same(result.transcript.slice(-2), ['> QUIT', '< 221 Goodbye.'], 'the session ends cleanly')
  t.notOk(server.commands.some((line) => line.startsWith('RETR')), 'no RETR after the failed connect')
  await t.rejects(startFtpServer({ advertiseAddress: '::1' }), /advertiseAddress: ::1 is not an IPv4 address/)
})

t.test('pasvReply is sent verbatim, and fetchFile finds the tuple on any line of a multi-line 227', async (t) => {
  let sent = ''
  const server = await ftpServer(t, {
    files: { 'f.bin': Buffer.from('payload') },
    pasvReply: ({ host, port }) => {
      sent = `227-Passive mode, really\r\n227 =${host.replaceAll('.', ',')},${port >> 8},${port & 255}`
      return sent
    },
  })
  const control = await RawControl.open(t, server.port)
  await control.login()
  const before = control.received.length
  const reply = await control.command('PASV')
  t.equal(control.received.slice(before), `${sent}\r\n`, 'exact bytes, CRLF added once')
  t.equal(reply.length, 2)

  const result = await fetchFile({ host: server.host, port: server.port, path: 'f.bin' })
  t.ok(result.ok, result.error ?? 'ok')
  t.equal(result.data?.toString(), 'payload')
  t.ok(result.transcript.includes('< 227-Passive mode, really'), 'both lines in the transcript')

  const broken = await ftpServer(t, { pasvReply: () => '227 Entering Passive Mode (127,0,0,1,999,1).' })
  const refused = await fetchFile({ host: broken.host, port: broken.port, path: 'f.bin' })
  t.match(refused.error, /^PASV failed: no valid address in /, 'an octet over 255 is not an address')
  t.equal(refused.transcript.at(-1), '< 221 Goodbye.')
})

t.test('epsvReply: custom and unsupported', async (t) => {
  const custom = await ftpServer(t, { epsvReply: ({ port }) => `229 Extended (!!!${port}!)` })
  const control = await RawControl.open(t, custom.port)
  await control.login()
  t.match(await control.command('EPSV'), [/^229 Extended \(!!!\d+!\)$/])

  const server = await ftpServer(t, { epsvReply: 'unsupported', files: { 'a.txt': Buffer.from('a') } })
  const raw = await RawControl.open(t, server.port)
  await raw.login()
  t.match(await raw.command('EPSV'), [/^500 /])
  t.match(await raw.command('EPSV ALL'), [/^500 /])
  t.notOk((await raw.command('FEAT')).includes(' EPSV'), 'FEAT does not offer EPSV')
  const result = await fetchFile({ host: server.host, port: server.port, path: 'a.txt', mode: 'epsv' })
  t.equal(result.ok, false)
  t.match(result.error, /^EPSV failed: 500 /)
  t.equal(result.transcript.at(-1), '< 221 Goodbye.')
})

t.test('dataListen never: the data port refuses connections', async (t) => {
  const server = await ftpServer(t, { dataListen: 'never', files: { 'a.txt': Buffer.from('a') } })
  for (const mode of ['pasv', 'epsv'] as const) {
    const result = await fetchFile({ host: server.host, port: server.port, path: 'a.txt', mode })
    t.equal(result.ok, false, mode)
    t.match(result.error, /^data connection to 127\.0\.0\.1:\d+ failed: .*ECONNREFUSED/, mode)
  }
})

t.test('STOR and APPE over a raw socket store the bytes; LIST and NLST show them', async (t) => {
  const server = await ftpServer(t)
  const control = await RawControl.open(t, server.port)
  await control.login()
  t.match(await control.command('TYPE I'), [/^200 /])
  const content = randomBytes(100 * 1024)

  let data = await control.passiveData(t)
  t.match(await control.command('STOR up/new.bin'), [/^150 /])
  data.end(content)
  t.match(await control.reply(), [/^226 /])
  t.ok(server.files['up/new.bin']?.equals(content), 'stored byte for byte')

  data = await control.passiveData(t)
  t.match(await control.command('APPE up/new.bin'), [/^150 /])
  data.end('tail')
  t.match(await control.reply(), [/^226 /])
  t.ok(server.files['up/new.bin']?.equals(Buffer.concat([content, Buffer.from('tail')])), 'appended')

  data = await control.passiveData(t)
  t.match(await control.command('LIST'), [/^150 /])
  t.match((await readAll(data)).toString(), /^drwxr-xr-x 2 ftp ftp +0 Jan 01 {2}2000 up\r\n$/)
  t.match(await control.reply(), [/^226 /])

  t.match(await control.command('CWD up'), [/^250 /])
  t.same(await control.command('PWD'), ['257 "/up" is the current directory'])
  t.same(await control.command('SIZE new.bin'), [`213 ${content.length + 4}`])
  data = await control.passiveData(t)
  t.match(await control.command('NLST'), [/^150 /])
  t.equal((await readAll(data)).toString(), 'new.bin\r\n')
  t.match(await control.reply(), [/^226 /])
  data = await control.passiveData(t)
  t.match(await control.command('LIST -l new.bin'), [/^150 /], 'a file, relative to the working directory')
  const line = `-rw-r--r-- 1 ftp ftp ${String(content.length + 4).padStart(10)} Jan 01  2000 new.bin\r\n`
  t.equal((await readAll(data)).toString(), line)
  t.match(await control.reply(), [/^226 /])
  t.match(await control.command('CWD /nowhere'), [/^550 /])
  t.match(await control.command('STOR /up'), [/^553 /], 'a directory is not a file')
})

t.test('STOR of a file named __proto__ stores a file, not a prototype', async (t) => {
  const server = await ftpServer(t)
  const control = await RawControl.open(t, server.port)
  await control.login()
  const data = await control.passiveData(t)
  t.match(await control.command('STOR __proto__'), [/^150 /])
  data.end('x')
  t.match(await control.reply(), [/^226 /])
  t.same(Object.keys(server.files), ['__proto__'])
  t.equal(Object.getPrototypeOf(server.files), Object.prototype)
})

t.test('ABOR during a transfer answers 426 then 226', async (t) => {
  // Larger than loopback socket buffers, so the transfer is still running when ABOR comes.
  const server = await ftpServer(t, { files: { 'big.bin': Buffer.alloc(64 * 1024 * 1024) } })
  const control = await RawControl.open(t, server.port)
  await control.login()
  t.match(await control.command('ABOR'), [/^225 /], 'no transfer: 225')

  const forms = [
    ['plain ABOR', Buffer.from('ABOR\r\n')],
    // python's ftplib: IAC IP IAC DM before ABOR, sent as urgent data so Linux drops the final LF.
    ['Telnet IP/DM and no LF', Buffer.concat([Buffer.from([0xff, 0xf4, 0xff, 0xf2]), Buffer.from('ABOR\r')])],
  ] as const
  for (const [name, abor] of forms) {
    const data = await control.passiveData(t)
    data.pause()
    t.match(await control.command('RETR big.bin'), [/^150 /], name)
    control.send(abor)
    t.match(await control.reply(), [/^426 /], `${name}: the transfer answers 426`)
    t.match(await control.reply(), [/^226 ABOR/], `${name}: then ABOR answers 226`)
    data.resume()
    await once(data, 'close')
  }
  t.match(await control.command('NOOP'), [/^200 /], 'the session goes on')
  t.equal(server.commands.filter((line) => line === 'ABOR').length, 3)
})

t.test('RETR may come before the data connection, which must come from the control client', async (t) => {
  const server = await ftpServer(t, { files: { 'a.txt': Buffer.from('0123456789') } })
  const control = await RawControl.open(t, server.port)
  await control.login()
  t.match(await control.command('OPTS UTF8 ON'), [/^200 /])
  t.match(await control.command('REST 4'), [/^350 /])
  let { host, port } = await control.pasv()
  control.send('RETR a.txt')
  // RFC 2577 port stealing: vsftpd refuses a data connection from another address by default.
  const stranger = await dataConnection(t, host, port, '127.0.0.2')
  await once(stranger, 'close')
  const data = await dataConnection(t, host, port)
  t.equal((await readAll(data)).toString(), '456789', 'from the REST offset')
  t.match(await control.reply(), [/^150 /])
  t.match(await control.reply(), [/^226 /])

  ;({ host, port } = await control.pasv())
  control.send('RETR a.txt')
  t.match(await control.command('ABOR'), [/^426 /], 'ABOR while waiting for the data connection')
  t.match(await control.reply(), [/^226 ABOR/])
  await t.rejects(dataConnection(t, host, port), { code: 'ECONNREFUSED' }, 'the listener is gone')
})

t.test('FEAT answers a multi-line 211', async (t) => {
  const server = await ftpServer(t)
  const control = await RawControl.open(t, server.port)
  const features = [' EPSV', ' MDTM', ' PASV', ' REST STREAM', ' SIZE', ' UTF8']
  t.same(await control.command('FEAT'), ['211-Features:', ...features, '211 End'])
})

t.test('PORT and EPRT: the server connects to loopback targets only', async (t) => {
  const content = Buffer.from('active mode works')
  const server = await ftpServer(t, { files: { 'a.txt': content } })
  const listener = createServer()
  t.teardown(() => listener.close())
  listener.listen(0, '127.0.0.1')
  await once(listener, 'listening')
  const address = listener.address()
  const port = typeof address === 'object' && address ? address.port : 0

  const control = await RawControl.open(t, server.port)
  await control.login()
  t.match(await control.command('PORT 10,0,0,1,4,0'), [/^500 /], 'not loopback')
  t.match(await control.command('PORT 127,0,0,1,999,0'), [/^500 /], 'octet over 255')
  t.match(await control.command('EPRT |1|192.168.1.1|2000|'), [/^500 /], 'not loopback')
  t.match(await control.command('EPRT |2|127.0.0.1|2000|'), [/^500 /], 'family mismatch')

  for (const setup of [`PORT 127,0,0,1,${port >> 8},${port & 255}`, `EPRT !1!127.0.0.1!${port}!`]) {
    t.match(await control.command(setup), [/^200 /], setup)
    const accepted = once(listener, 'connection')
    control.send('RETR a.txt')
    const [data] = (await accepted) as [Socket]
    t.equal((await readAll(data)).toString(), content.toString(), `${setup}: data`)
    t.match(await control.reply(), [/^150 /])
    t.match(await control.reply(), [/^226 /])
  }
  t.match(await control.command('EPSV ALL'), [/^200 /])
  t.match(await control.command('PASV'), [/^500 /], 'RFC 2428: PASV refused after EPSV ALL')
  t.match(await control.command(`PORT 127,0,0,1,${port >> 8},${port & 255}`), [/^500 /])
})

t.test('login, unknown commands, bad input', async (t) => {
  const seen: string[] = []
  const server = await ftpServer(t, { greeting: '220 hello', onCommand: (line) => seen.push(line) })
  const control = await RawControl.open(t, server.port)
  t.equal(control.received, '220 hello\r\n')
  t.match(await control.command('RETR x'), [/^530 /], 'login first')
  t.match(await control.command('PASS x'), [/^503 /], 'USER first')
  await control.login()
  t.match(await control.command('XYZZY'), [/^502 /])
  t.match(await control.command('RETR missing'), [/^550 /])
  t.match(await control.command('RETR missing'), [/^550 /])
  t.match(await control.command('TYPE Q'), [/^504 /])
  t.match(await control.command('REST abc'), [/^501 /])
  t.match(await control.command('LIST'), [/^425 /], 'no PASV/PORT first')
  t.match(await control.command('SYST'), [/^215 /])
  t.same(seen, server.commands)

  control.send(Buffer.alloc(9000, 'A'))
  t.match(await control.reply(), [/^421 /], 'a line over 8 KiB closes the session')
  await once(control.socket, 'close')
})

t.test('fetchFile: a missing file fails with the reply, and the session still ends with QUIT', async (t) => {
  const server = await ftpServer(t)
  const result = await fetchFile({ host: server.host, port: server.port, path: 'missing' })
  t.equal(result.ok, false)
  t.match(result.error, /^RETR failed: 550 /)
  t.same(result.transcript.slice(-2), ['> QUIT', '< 221 Goodbye.'])

  const refused = await fetchFile({ host: server.host, port: 1, path: 'x', timeoutMs: 2000 })
  t.match(refused.error, /^control connection to 127\.0\.0\.1:1 failed/)

  const injected = await fetchFile({ host: server.host, port: server.port, path: 'x\r\nDELE y' })
  t.match(injected.error, /must not contain CR or LF/)
  t.same(injected.transcript, [], 'nothing sent')
})

t.test('fetchFile: a server that stops answering times out', async (t) => {
  const silent = createServer((socket) => socket.write('220 hi\r\n'))
  const sockets = new Set<Socket>()
  silent.on('connection', (socket) => sockets.add(socket))
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    silent.close()
  })
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  const address = silent.address()
  const port = typeof address === 'object' && address ? address.port : 0
  const result = await fetchFile({ host: '127.0.0.1', port, path: 'x', timeoutMs: 200 })
  t.equal(result.ok, false)
  t.equal(result.error, 'no reply within 200 ms')
  t.same(result.transcript, ['< 220 hi', '> USER anonymous'])
})

t.test('close() ends open sessions', async (t) => {
  const server = await startFtpServer()
  const control = await RawControl.open(t, server.port)
  await control.login()
  await control.passiveData(t)
  const closed = once(control.socket, 'close')
  await server.close()
  await closed
  await server.close()
  t.pass('closed twice without error')
})
