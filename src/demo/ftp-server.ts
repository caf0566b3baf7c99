// A small, scriptable FTP server on node:net. Two users: the `demo` command, whose built-in
// server fails like PRODFTP (its 227 names an address where nothing listens), and the tests,
// which need misbehaviour real servers do not produce on demand (odd 227 forms, EPSV refused,
// a data port that never answers). Everything else follows RFC 959 closely enough for real
// clients. Loopback only: PORT/EPRT targets outside 127.0.0.0/8 and ::1 are refused.

import { BlockList, connect, createServer, isIP, isIPv4 } from 'node:net'
import type { AddressInfo, Server, Socket } from 'node:net'
import { posix } from 'node:path'

export interface Endpoint {
  host: string
  port: number
}

export interface FtpServerOptions {
  /** Default '127.0.0.1'. */
  host?: string
  /** Default 0: any free port. */
  port?: number
  /**
   * In-memory files, keyed by path from the root (a leading '/' is optional). RETR/SIZE read
   * them, LIST/NLST list them (directories are implied by the paths), STOR/APPE write here.
   */
  files?: Record<string, Buffer>
  /**
   * The PASV reply, given the real data listener's address. Sent verbatim; CRLF is added
   * unless the text already ends in a line break, so multi-line replies use \r\n inside.
   * Default: a canonical 227 naming the real address.
   */
  pasvReply?: (real: Endpoint) => string
  /** Like pasvReply for EPSV; 'unsupported' answers every EPSV with 500. */
  epsvReply?: ((real: Endpoint) => string) | 'unsupported'
  /** A canonical 227 that names this IPv4 address instead of the real one, like PRODFTP. */
  advertiseAddress?: string
  /** 'never': PASV/EPSV name a port where nothing listens, so the data connection is refused. */
  dataListen?: 'normal' | 'never'
  /** Default '220 ftp-pasv-proxy demo server'. */
  greeting?: string
  /** Called with every command line received (CR stripped, Telnet commands removed). */
  onCommand?: (line: string) => void
}

export interface FtpServer {
  readonly host: string
  readonly port: number
  /** options.files itself when given, so STOR/APPE results show up in the caller's object. */
  readonly files: Record<string, Buffer>
  /** Every command line received by any session, in arrival order. */
  readonly commands: string[]
  /** Stops listening and closes every session, data listener and data connection. */
  close(): Promise<void>
}

/** RFC 959 leaves the length open; 8 KiB is far above any real command and bounds the buffer. */
const MAX_LINE_BYTES = 8192
/** How long a transfer command waits for its data connection before answering 425. */
const DATA_CONNECT_TIMEOUT_MS = 10_000
/** Files have no times of their own; MDTM and LIST report this fixed one so output is stable. */
const MDTM = '20000101000000'
const LIST_DATE = 'Jan 01  2000'

/** Commands a client may send before logging in; the rest get 530, as vsftpd answers. */
const BEFORE_LOGIN = new Set(['USER', 'PASS', 'QUIT', 'SYST', 'FEAT', 'NOOP', 'OPTS'])

const LOOPBACK = new BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

interface ServerContext {
  options: FtpServerOptions
  files: Record<string, Buffer>
  commands: string[]
  sockets: Set<Socket>
}

export async function startFtpServer(options: FtpServerOptions = {}): Promise<FtpServer> {
  if (options.advertiseAddress !== undefined && !isIPv4(options.advertiseAddress)) {
    throw new TypeError(`advertiseAddress: ${options.advertiseAddress} is not an IPv4 address`)
  }
  const context: ServerContext = {
    options,
    files: options.files ?? {},
    commands: [],
    sockets: new Set(),
  }
  const server = createServer((socket) => {
    context.sockets.add(socket)
    // The session lives on its socket's events; nothing else needs to hold it.
    // eslint-disable-next-line no-new
    new Session(socket, context)
  })
  await listen(server, options.host ?? '127.0.0.1', options.port ?? 0)
  const { address, port } = server.address() as AddressInfo

  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve())
      // Each session's 'close' handler closes its data listener and data connection.
      for (const socket of context.sockets) socket.destroy()
    })
    return closing
  }
  return { host: address, port, files: context.files, commands: context.commands, close }
}

/** One control connection. Commands run one at a time, in order; ABOR overtakes a running transfer. */
class Session {
  private readonly localIp: string
  private readonly peerIp: string
  private buffered: Buffer = Buffer.alloc(0)
  private readonly queue: string[] = []
  private draining = false
  private closed = false
  private user: string | undefined
  private loggedIn = false
  /** RFC 2428 3: after EPSV ALL every other data setup command is refused. */
  private epsvAll = false
  private restOffset = 0
  private cwd = '/'
  /** The data connection set up by the last PASV/EPSV/PORT/EPRT, consumed by one transfer. */
  private channel: DataChannel | undefined
  private running: AbortController | undefined
  private lastTransferAborted = false

  constructor(
    private readonly socket: Socket,
    private readonly context: ServerContext,
  ) {
    this.localIp = plainIp(socket.localAddress)
    this.peerIp = plainIp(socket.remoteAddress)
    // The reason a control connection failed changes nothing here: 'close' follows and tears down.
    socket.on('error', () => {})
    socket.on('close', () => this.teardown())
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    this.write(context.options.greeting ?? '220 ftp-pasv-proxy demo server')
  }

  private teardown(): void {
    this.closed = true
    this.queue.length = 0
    this.running?.abort()
    this.dropChannel()
    this.context.sockets.delete(this.socket)
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
    for (let lf = this.buffered.indexOf(0x0a); lf !== -1; lf = this.buffered.indexOf(0x0a)) {
      const line = this.buffered.subarray(0, lf)
      this.buffered = this.buffered.subarray(lf + 1)
      if (line.length > MAX_LINE_BYTES) return this.closeWith(421, 'Line too long.')
      this.onLine(commandText(line))
      if (this.closed) return
    }
    if (this.buffered.length > MAX_LINE_BYTES) return this.closeWith(421, 'Line too long.')
    // ftplib sends ABOR as TCP urgent data and Linux drops the urgent byte, the final LF: an
    // "ABOR\r" with no LF must still abort. A LF arriving later makes an empty line, ignored.
    const pending = commandText(this.buffered)
    if (/^ABOR\r$/i.test(pending)) {
      this.buffered = Buffer.alloc(0)
      this.onLine(pending)
    }
  }

  private onLine(text: string): void {
    const line = text.endsWith('\r') ? text.slice(0, -1) : text
    if (line === '') return
    this.context.commands.push(line)
    this.context.options.onCommand?.(line)
    if (this.running && splitCommand(line).verb === 'ABOR') {
      // RFC 959 4.1.3: ABOR interrupts the transfer, which answers 426, then ABOR answers 226.
      // Queued first, it runs right after the transfer command finishes.
      this.running.abort()
      this.queue.unshift(line)
      return
    }
    this.queue.push(line)
    void this.drain()
  }

  private async drain(): Promise<void> {
    if (this.draining) return
    this.draining = true
    for (let line = this.queue.shift(); line !== undefined; line = this.queue.shift()) {
      try {
        await this.execute(line)
      } catch (err) {
        // A bug in a handler fails that command, not the process running the tests.
        this.reply(451, `Local error: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
    this.draining = false
  }

  private async execute(line: string): Promise<void> {
    const { verb, arg } = splitCommand(line)
    if (!this.loggedIn && !BEFORE_LOGIN.has(verb)) return this.reply(530, 'Please login with USER and PASS.')
    switch (verb) {
      case 'USER':
        this.user = arg
        this.loggedIn = false
        return this.reply(331, 'Please specify the password.')
      case 'PASS':
        if (this.user === undefined) return this.reply(503, 'Login with USER first.')
        this.loggedIn = true
        return this.reply(230, 'Login successful.')
      case 'SYST':
        return this.reply(215, 'UNIX Type: L8')
      case 'FEAT':
        return this.feat()
      case 'OPTS':
        if (!/^UTF8 ON$/i.test(arg)) return this.reply(501, 'Option not understood.')
        return this.reply(200, 'Always in UTF8 mode.')
      case 'NOOP':
        return this.reply(200, 'NOOP ok.')
      case 'TYPE':
        if (!/^(A|I|L 8)( N)?$/i.test(arg)) return this.reply(504, 'Bad TYPE command.')
        return this.reply(200, `Type set to ${arg}.`)
      case 'PWD':
        // RFC 959 appendix II: a '"' inside the quoted directory name is doubled.
        return this.reply(257, `"${this.cwd.replaceAll('"', '""')}" is the current directory`)
      case 'CWD':
        return this.cwdTo(arg)
      case 'PASV':
        return this.pasv()
      case 'EPSV':
        return this.epsv(arg)
      case 'PORT':
        return this.active(parsePort(arg), 'PORT command successful. Consider using PASV.')
      case 'EPRT':
        return this.active(parseEprt(arg), 'EPRT command successful. Consider using EPSV.')
      case 'REST':
        if (!/^\d+$/.test(arg)) return this.reply(501, 'REST needs a byte offset.')
        this.restOffset = Number(arg)
        return this.reply(350, `Restart position accepted (${arg}).`)
      case 'SIZE':
      case 'MDTM': {
        const file = this.file(this.key(arg))
        if (file === undefined) return this.reply(550, 'Could not get file size.')
        return this.reply(213, verb === 'SIZE' ? String(file.length) : MDTM)
      }
      case 'RETR':
        return this.retr(arg)
      case 'LIST':
      case 'NLST':
        return this.list(arg, verb === 'LIST')
      case 'STOR':
      case 'APPE':
        return this.store(arg, verb === 'APPE')
      case 'ABOR':
        // No transfer runs now: either one was just aborted (its 426 is out) or there was none.
        this.dropChannel()
        if (!this.lastTransferAborted) return this.reply(225, 'No transfer to ABOR.')
        this.lastTransferAborted = false
        return this.reply(226, 'ABOR successful.')
      case 'QUIT':
        return this.closeWith(221, 'Goodbye.')
      default:
        return this.reply(502, 'Command not implemented.')
    }
  }

  private feat(): void {
    // RFC 2389: a multi-line 211, one feature per line, each line starting with a space.
    const features = [
      ...(this.context.options.epsvReply === 'unsupported' ? [] : ['EPSV']),
      'MDTM',
      'PASV',
      'REST STREAM',
      'SIZE',
      'UTF8',
    ]
    this.write(['211-Features:', ...features.map((feature) => ` ${feature}`), '211 End'].join('\r\n'))
  }

  private cwdTo(arg: string): void {
    const key = this.key(arg)
    if (listDirectory(this.context.files, key) === undefined) return this.reply(550, 'Failed to change directory.')
    this.cwd = `/${key}`
    this.reply(250, 'Directory successfully changed.')
  }

  private async pasv(): Promise<void> {
    if (this.epsvAll) return this.reply(500, 'PASV not allowed after EPSV ALL.')
    if (!isIPv4(this.localIp)) return this.reply(500, 'PASV is IPv4 only; use EPSV.')
    const real = await this.openPassive()
    if (real === undefined) return
    const { pasvReply, advertiseAddress } = this.context.options
    this.write(pasvReply ? pasvReply(real) : format227(advertiseAddress ?? real.host, real.port))
  }

  private async epsv(arg: string): Promise<void> {
    const { epsvReply } = this.context.options
    if (epsvReply === 'unsupported') return this.reply(500, "'EPSV': command not understood.")
    if (/^ALL$/i.test(arg)) {
      this.epsvAll = true
      return this.reply(200, 'EPSV ALL ok.')
    }
    // RFC 2428 3: the argument, if any, names the network protocol; only ours can be served.
    const family = isIPv4(this.localIp) ? '1' : '2'
    if (arg !== '' && arg !== family) return this.reply(522, `Network protocol not supported, use (${family}).`)
    const real = await this.openPassive()
    if (real === undefined) return
    this.write(epsvReply ? epsvReply(real) : `229 Entering Extended Passive Mode (|||${real.port}|)`)
  }

  /** A fresh data listener for PASV/EPSV, replacing any earlier one. */
  private async openPassive(): Promise<Endpoint | undefined> {
    this.dropChannel()
    let channel: PassiveChannel
    try {
      channel =
        this.context.options.dataListen === 'never'
          ? await PassiveChannel.dead(this.localIp)
          : await PassiveChannel.listen(this.localIp, this.peerIp)
    } catch (err) {
      this.reply(425, `Cannot open passive connection: ${err instanceof Error ? err.message : String(err)}`)
      return undefined
    }
    if (this.closed) {
      channel.close()
      return undefined
    }
    this.channel = channel
    return channel.endpoint
  }

  private active(target: Endpoint | undefined, success: string): void {
    if (this.epsvAll) return this.reply(500, 'PORT/EPRT not allowed after EPSV ALL.')
    if (target === undefined) return this.reply(500, 'Illegal PORT command.')
    this.dropChannel()
    this.channel = new ActiveChannel(target)
    this.reply(200, success)
  }

  private async retr(arg: string): Promise<void> {
    const file = this.file(this.key(arg))
    const offset = this.takeRestOffset()
    if (file === undefined) return this.reply(550, 'Failed to open file.')
    const opening = `Opening BINARY mode data connection for ${arg} (${file.length} bytes).`
    await this.transfer(opening, { send: file.subarray(offset) })
  }

  private async list(arg: string, long: boolean): Promise<void> {
    // Clients send options such as `LIST -la`; this server has no use for them.
    const key = this.key(arg.replace(/^-\S*\s*/, ''))
    const file = this.file(key)
    const entries = file === undefined ? listDirectory(this.context.files, key) : new Map([[posix.basename(key), file]])
    if (entries === undefined) return this.reply(550, 'No such file or directory.')
    const lines = [...entries].map(([name, content]) => `${long ? longListing(name, content) : name}\r\n`)
    await this.transfer('Here comes the directory listing.', { send: Buffer.from(lines.join('')) })
  }

  private async store(arg: string, append: boolean): Promise<void> {
    const key = this.key(arg)
    const offset = this.takeRestOffset()
    if (key === '' || listDirectory(this.context.files, key) !== undefined) {
      return this.reply(553, 'Could not create file.')
    }
    await this.transfer('Ok to send data.', {
      receive: (bytes) => {
        const existing = this.file(key) ?? Buffer.alloc(0)
        const kept = append ? existing : existing.subarray(0, offset)
        writeFile(this.context.files, key, Buffer.concat([kept, bytes]))
      },
    })
  }

  /**
   * 150, the data, then 226 once the data connection has closed; 425 when no data connection
   * came, 426 when it broke or ABOR cut it.
   */
  private async transfer(opening: string, io: { send: Buffer } | { receive: (bytes: Buffer) => void }): Promise<void> {
    const channel = this.channel
    this.channel = undefined
    if (channel === undefined) return this.reply(425, 'Use PORT or PASV first.')
    const abort = new AbortController()
    this.running = abort
    this.lastTransferAborted = false
    try {
      const data = await channel.open(abort.signal)
      if (abort.signal.aborted) return this.reply(426, 'Connection closed; transfer aborted.')
      if (data === undefined) return this.reply(425, 'Failed to establish connection.')
      this.reply(150, opening)
      const received = await exchange(data, 'send' in io ? io.send : undefined, abort.signal)
      if (received === undefined) return this.reply(426, 'Connection closed; transfer aborted.')
      if ('receive' in io) io.receive(received)
      this.reply(226, 'Transfer complete.')
    } finally {
      channel.close()
      this.running = undefined
      this.lastTransferAborted = abort.signal.aborted
    }
  }

  private dropChannel(): void {
    this.channel?.close()
    this.channel = undefined
  }

  private takeRestOffset(): number {
    const offset = this.restOffset
    this.restOffset = 0
    return offset
  }

  /** A client path as a key into files: resolved against the working directory, no leading '/'. */
  private key(arg: string): string {
    return posix.resolve(this.cwd, arg).slice(1)
  }

  private file(key: string): Buffer | undefined {
    const stored = findFile(this.context.files, key)
    return stored === undefined ? undefined : this.context.files[stored]
  }

  private reply(code: number, text: string): void {
    this.write(`${code} ${text}`)
  }

  private write(reply: string): void {
    if (this.socket.writable) this.socket.write(reply.endsWith('\n') ? reply : `${reply}\r\n`)
  }

  /** Sends a last reply and closes; 'close' tears the session down. */
  private closeWith(code: number, text: string): void {
    this.closed = true
    this.queue.length = 0
    this.socket.end(`${code} ${text}\r\n`, () => this.socket.destroy())
  }
}

interface DataChannel {
  /** The data connection, or undefined when none came in time or the signal aborted the wait. */
  open(signal: AbortSignal): Promise<Socket | undefined>
  close(): void
}

/** PASV/EPSV: a fresh listener on port 0 that takes one connection. */
class PassiveChannel implements DataChannel {
  private accepted: Socket | undefined
  private onAccept: (() => void) | undefined

  private constructor(
    readonly endpoint: Endpoint,
    private readonly listener: Server | undefined,
  ) {}

  static async listen(host: string, peerIp: string): Promise<PassiveChannel> {
    const listener = createServer()
    await listen(listener, host, 0)
    const channel = new PassiveChannel({ host, port: (listener.address() as AddressInfo).port }, listener)
    listener.on('connection', (socket) => channel.accept(socket, peerIp))
    return channel
  }

  /**
   * dataListen 'never': a port that was listening a moment ago and is closed now, so a connect
   * to it is refused. Another process could bind it in between; on loopback that is unlikely,
   * and it only turns the refused connect this option exists for into a different failure.
   */
  static async dead(host: string): Promise<PassiveChannel> {
    const probe = createServer()
    await listen(probe, host, 0)
    const { port } = probe.address() as AddressInfo
    await new Promise((resolve) => probe.close(resolve))
    return new PassiveChannel({ host, port }, undefined)
  }

  private accept(socket: Socket, peerIp: string): void {
    // A data socket's failure shows in the transfer as a close without completion.
    socket.on('error', () => {})
    // Like vsftpd's default (pasv_promiscuous=NO): a data connection from another address than
    // the control client's is refused (RFC 2577, port stealing).
    if (plainIp(socket.remoteAddress) !== peerIp) {
      socket.destroy()
      return
    }
    this.accepted = socket
    this.listener?.close()
    this.onAccept?.()
  }

  open(signal: AbortSignal): Promise<Socket | undefined> {
    if (this.accepted) return Promise.resolve(this.accepted)
    return new Promise((resolve) => {
      const settle = (): void => {
        clearTimeout(timer)
        signal.removeEventListener('abort', settle)
        this.onAccept = undefined
        resolve(this.accepted)
      }
      const timer = setTimeout(settle, DATA_CONNECT_TIMEOUT_MS)
      signal.addEventListener('abort', settle)
      this.onAccept = settle
    })
  }

  close(): void {
    this.listener?.close()
    this.accepted?.destroy()
  }
}

/** PORT/EPRT: the server connects to the client when the transfer command comes. */
class ActiveChannel implements DataChannel {
  private socket: Socket | undefined

  constructor(private readonly target: Endpoint) {}

  open(signal: AbortSignal): Promise<Socket | undefined> {
    return new Promise((resolve) => {
      const socket = connect(this.target.port, this.target.host)
      this.socket = socket
      // A refused or broken connect shows as a close before 'connect'.
      socket.on('error', () => {})
      let settled = false
      const settle = (connected: boolean): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        signal.removeEventListener('abort', onAbort)
        if (!connected) socket.destroy()
        resolve(connected ? socket : undefined)
      }
      const onAbort = (): void => settle(false)
      const timer = setTimeout(onAbort, DATA_CONNECT_TIMEOUT_MS)
      signal.addEventListener('abort', onAbort)
      socket.once('connect', () => settle(true))
      socket.once('close', onAbort)
    })
  }

  close(): void {
    this.socket?.destroy()
  }
}

/**
 * Sends `send` and closes, or receives until the peer's EOF. Resolves with the bytes received
 * once the socket has closed, or undefined if it closed before completing (error or abort).
 */
function exchange(data: Socket, send: Buffer | undefined, signal: AbortSignal): Promise<Buffer | undefined> {
  if (data.destroyed) return Promise.resolve(undefined)
  return new Promise((resolve) => {
    const received: Buffer[] = []
    let complete = false
    const abort = (): void => {
      data.destroy()
    }
    signal.addEventListener('abort', abort)
    data.on('data', (chunk: Buffer) => received.push(chunk))
    data.on('close', () => {
      signal.removeEventListener('abort', abort)
      resolve(complete ? Buffer.concat(received) : undefined)
    })
    if (send === undefined) {
      data.on('end', () => {
        complete = true
      })
    } else {
      // Close fully once every byte is handed to the kernel, as a server's close(2) does: the
      // kernel still delivers them, and a client that never closes its side cannot stall us.
      data.end(send)
      data.on('finish', () => {
        complete = true
        data.destroy()
      })
    }
  })
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

/** Node reports IPv4 peers of a dual-stack socket as ::ffff:a.b.c.d. */
function plainIp(address: string | undefined): string {
  return (address ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '')
}

/** RFC 854: Telnet commands may precede a command (ftplib sends IAC IP IAC DM before ABOR). */
function commandText(line: Buffer): string {
  const IAC = 0xff
  if (!line.includes(IAC)) return line.toString('utf8')
  const kept: number[] = []
  for (let i = 0; i < line.length; i++) {
    const byte = line.readUInt8(i)
    if (byte !== IAC) {
      kept.push(byte)
      continue
    }
    const next = i + 1 < line.length ? line.readUInt8(i + 1) : undefined
    // IAC IAC is a literal 0xFF; WILL, WONT, DO and DONT (0xFB-0xFE) carry one option byte.
    if (next === IAC) kept.push(IAC)
    i += next !== undefined && next >= 0xfb && next <= 0xfe ? 2 : 1
  }
  return Buffer.from(kept).toString('utf8')
}

/** RFC 959 5.3: the verb, then a single space and the argument, which is kept as sent. */
function splitCommand(line: string): { verb: string; arg: string } {
  const space = line.indexOf(' ')
  if (space === -1) return { verb: line.toUpperCase(), arg: '' }
  return { verb: line.slice(0, space).toUpperCase(), arg: line.slice(space + 1) }
}

function format227(host: string, port: number): string {
  return `227 Entering Passive Mode (${host.replaceAll('.', ',')},${port >> 8},${port & 255}).`
}

/** RFC 959 PORT h1,h2,h3,h4,p1,p2: every value 0-255, port not 0, loopback only. */
function parsePort(arg: string): Endpoint | undefined {
  const match = /^(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})$/.exec(arg.trim())
  if (!match) return undefined
  const values = match.slice(1).map(Number)
  if (values.some((value) => value > 255)) return undefined
  const [h1, h2, h3, h4, p1 = 0, p2 = 0] = values
  return loopbackEndpoint(`${h1}.${h2}.${h3}.${h4}`, p1 * 256 + p2, 'ipv4')
}

/** RFC 2428 EPRT <d>proto<d>address<d>port<d>, the delimiter any of ASCII 33-126. */
function parseEprt(arg: string): Endpoint | undefined {
  const delimiter = arg[0]
  if (delimiter === undefined || delimiter < '!' || delimiter > '~') return undefined
  const [before, protocol, host = '', port = '', after, ...rest] = arg.split(delimiter)
  if (before !== '' || after !== '' || rest.length > 0 || !/^\d{1,5}$/.test(port)) return undefined
  const family = protocol === '1' ? 'ipv4' : protocol === '2' ? 'ipv6' : undefined
  if (family === undefined || isIP(host) !== (family === 'ipv4' ? 4 : 6)) return undefined
  return loopbackEndpoint(host, Number(port), family)
}

function loopbackEndpoint(host: string, port: number, family: 'ipv4' | 'ipv6'): Endpoint | undefined {
  if (port < 1 || port > 65535 || !LOOPBACK.check(host, family)) return undefined
  return { host, port }
}

/** The key under which `key` is stored: as is, or with the leading '/' a caller may have used. */
function findFile(files: Record<string, Buffer>, key: string): string | undefined {
  return [key, `/${key}`].find((candidate) => Object.hasOwn(files, candidate))
}

function writeFile(files: Record<string, Buffer>, key: string, content: Buffer): void {
  // defineProperty rather than assignment: a client may well STOR a file called "__proto__".
  const property = findFile(files, key) ?? key
  Object.defineProperty(files, property, { value: content, enumerable: true, writable: true, configurable: true })
}

/**
 * The entries directly inside directory `key` ('' is the root): name -> content, undefined
 * content for a subdirectory. Undefined when no file lies under `key`, except for the root.
 */
function listDirectory(files: Record<string, Buffer>, key: string): Map<string, Buffer | undefined> | undefined {
  const prefix = key === '' ? '' : `${key}/`
  const entries = new Map<string, Buffer | undefined>()
  for (const [stored, content] of Object.entries(files)) {
    const path = stored.replace(/^\/+/, '')
    if (!path.startsWith(prefix)) continue
    const [name = '', ...below] = path.slice(prefix.length).split('/')
    entries.set(name, below.length > 0 ? undefined : content)
  }
  return entries.size === 0 && key !== '' ? undefined : entries
}

/** One line of `ls -l` style output, the form clients parse from LIST. */
function longListing(name: string, content: Buffer | undefined): string {
  const mode = content === undefined ? 'drwxr-xr-x 2' : '-rw-r--r-- 1'
  return `${mode} ftp ftp ${String(content?.length ?? 0).padStart(10)} ${LIST_DATE} ${name}`
}
