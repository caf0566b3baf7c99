// Helpers for the fault tests (not a test file: tap runs only *.test.ts).
//
// - FaultServer: a tiny FTP server on raw node:net whose every command can be scripted, for the
//   misbehaviour the demo server (src/demo/ftp-server.ts) cannot produce: a greeting that never
//   comes, a command never answered, a 1 MiB line, binary garbage, a RETR cut halfway.
// - The release check every fault test ends with: no session, no pool port, no file descriptor
//   more than before the fault, and a fresh session whose PASV/RETR brings equal bytes.
//
// Ports: the fault tests use 26000-26999 only (each file its own hundred); data listeners of the
// servers and the proxy's own listener take port 0.

import { createHash } from 'node:crypto'
import { readdirSync } from 'node:fs'
import net from 'node:net'
import type { Test } from 'tap'
import type { TestProxy } from '../fixtures/proxy.js'
import { metricValue } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp, readAll } from '../fixtures/raw-ftp.js'

export const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** Open file descriptors of this process: sockets, listeners, and everything else. */
export const openFds = (): number => readdirSync('/proc/self/fd').length

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls `cond` every 20 ms; false when it still does not hold after `ms`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms
  for (;;) {
    if (await cond()) return true
    if (Date.now() > end) return false
    await sleep(20)
  }
}

// ---- the scriptable server -------------------------------------------------------------------

export interface FaultCommand {
  readonly verb: string
  readonly arg: string
}

/**
 * Runs before the default handling of a command. Returning 'default' lets the default handle
 * it; anything else means the hook answered (or chose not to answer at all).
 */
export type FaultHook = (cmd: FaultCommand, session: FaultSession) => 'default' | void | Promise<'default' | void>

export interface FaultServerOptions {
  /** A fixed port of the test's range. */
  readonly port: number
  readonly files?: Record<string, Buffer>
  /**
   * Sent on connect, CRLF added to a string; null: the server never greets. A function is asked
   * at each connection.
   */
  readonly greeting?: string | Buffer | null | (() => string | Buffer | null)
  readonly onCommand?: FaultHook
}

export interface FaultServer {
  readonly port: number
  readonly files: Record<string, Buffer>
  /** Every command line received, CRLF stripped. */
  readonly commands: string[]
  /** Control connections open now. */
  readonly sessions: number
  close(): Promise<void>
}

export class FaultSession {
  readonly control: net.Socket
  /** Whether this connection was sent a greeting. */
  greeted = false
  #listener: net.Server | null = null
  #data: Promise<net.Socket> | null = null
  readonly #owned = new Set<net.Socket | net.Server>()

  constructor(control: net.Socket) {
    this.control = control
    this.#owned.add(control)
  }

  /** Writes raw bytes on the control connection; a string gets CRLF unless it ends in LF. */
  write(reply: string | Buffer): void {
    if (!this.control.writable) return
    this.control.write(typeof reply === 'string' && !reply.endsWith('\n') ? `${reply}\r\n` : reply)
  }

  /** Opens a passive listener on 127.0.0.1:0 that takes one connection; returns its port. */
  async pasv(): Promise<number> {
    this.dropData()
    const listener = net.createServer()
    this.#owned.add(listener)
    this.#listener = listener
    this.#data = new Promise((resolve) => {
      listener.once('connection', (s) => {
        s.on('error', () => {})
        this.#owned.add(s)
        s.once('close', () => this.#owned.delete(s))
        listener.close()
        resolve(s)
      })
    })
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve))
    return (listener.address() as net.AddressInfo).port
  }

  /** The data connection of the last PASV, or null when none came within `ms`. */
  async dataSocket(ms = 5000): Promise<net.Socket | null> {
    if (this.#data === null) return null
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), ms)
    })
    try {
      return await Promise.race([this.#data, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  dropData(): void {
    this.#listener?.close()
    this.#listener = null
    void this.#data?.then((s) => s.destroy())
    this.#data = null
  }

  destroyAll(): void {
    this.dropData()
    for (const x of this.#owned) {
      if (x instanceof net.Socket) x.destroy()
      else x.close()
    }
  }
}

/** Writes `bytes` and resolves once Node handed them all to the kernel (or the socket died). */
export function writeFlushed(socket: net.Socket, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    socket.once('close', () => resolve())
    socket.write(bytes, () => resolve())
  })
}

export async function startFaultServer(options: FaultServerOptions): Promise<FaultServer> {
  const files = options.files ?? {}
  const commands: string[] = []
  const sessions = new Set<FaultSession>()
  const server = net.createServer((socket) => {
    socket.on('error', () => {})
    const session = new FaultSession(socket)
    sessions.add(session)
    socket.once('close', () => {
      sessions.delete(session)
      session.destroyAll()
    })
    const greeting = typeof options.greeting === 'function' ? options.greeting() : options.greeting
    if (greeting !== null) {
      session.greeted = true
      session.write(greeting ?? '220 fault server')
    }
    let buffered = Buffer.alloc(0)
    let chain: Promise<void> = Promise.resolve()
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      // Bounded: a test server, talking to the proxy, which caps its own lines at 8 KiB.
      if (buffered.length > 1 << 20) {
        socket.destroy()
        return
      }
      for (let lf = buffered.indexOf(0x0a); lf !== -1; lf = buffered.indexOf(0x0a)) {
        const line = buffered.subarray(0, lf).toString('latin1').replace(/\r$/, '')
        buffered = buffered.subarray(lf + 1)
        commands.push(line)
        const space = line.indexOf(' ')
        const cmd = { verb: (space === -1 ? line : line.slice(0, space)).toUpperCase(), arg: space === -1 ? '' : line.slice(space + 1) }
        // One command at a time, in order, like a real server.
        chain = chain.then(() => run(cmd, session, files, options.onCommand)).catch(() => {
          socket.destroy()
        })
      }
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, '127.0.0.1', () => resolve())
  })
  return {
    port: options.port,
    files,
    commands,
    get sessions() {
      return sessions.size
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroyAll()
        server.close(() => resolve())
      }),
  }
}

async function run(cmd: FaultCommand, s: FaultSession, files: Record<string, Buffer>, hook: FaultHook | undefined): Promise<void> {
  if (hook !== undefined && (await hook(cmd, s)) !== 'default') return
  switch (cmd.verb) {
    case 'USER':
      return s.write('331 Password please.')
    case 'PASS':
      return s.write('230 Logged in.')
    case 'TYPE':
    case 'NOOP':
      return s.write(`200 ${cmd.verb} ok.`)
    case 'QUIT':
      s.write('221 Bye.')
      s.control.end()
      return
    case 'PASV': {
      const port = await s.pasv()
      return s.write(`227 Entering Passive Mode (127,0,0,1,${port >> 8},${port & 255}).`)
    }
    case 'RETR': {
      const file = files[cmd.arg]
      if (file === undefined) return s.write('550 No such file.')
      const data = await s.dataSocket()
      if (data === null) return s.write("425 Can't open data connection.")
      s.write('150 Opening BINARY mode data connection.')
      const closed = new Promise((r) => data.once('close', r))
      data.end(file)
      await closed
      s.dropData()
      return s.write(data.writableFinished ? '226 Transfer complete.' : '426 Connection closed; transfer aborted.')
    }
    default:
      return s.write(`502 ${cmd.verb} not implemented.`)
  }
}

// ---- the release check -----------------------------------------------------------------------

/** Login, PASV, RETR `name`: 226 and the same bytes as `expected`; then QUIT. */
export async function freshTransfer(t: Test, p: TestProxy, name: string, expected: Buffer, what = 'a fresh session'): Promise<void> {
  const c = await RawFtp.connect(p.host, p.port)
  try {
    await c.login()
    const pasv = await c.cmd('PASV')
    t.equal(pasv.code, 227, `${what}: PASV answered 227`)
    if (pasv.code !== 227) return
    const ep = pasvEndpoint(pasv.text)
    const data = readAll(ep.host, ep.port)
    t.equal((await c.cmd(`RETR ${name}`)).code, 226, `${what}: RETR answered 226`)
    t.equal(sha(await data), sha(expected), `${what}: equal bytes (sha256)`)
    t.equal((await c.cmd('QUIT')).code, 221, `${what}: QUIT`)
  } finally {
    c.close()
  }
}

/** Waits until the proxy holds no session and no pool port, then until fds are back to `fds`. */
export async function assertReleased(t: Test, p: TestProxy, fds: number, what: string): Promise<void> {
  await waitFor(() => p.proxy.sessionCount === 0 && p.proxy.pool.inUse === 0)
  t.equal(p.proxy.sessionCount, 0, `${what}: no session left`)
  t.equal(p.proxy.pool.inUse, 0, `${what}: every pool port released`)
  t.equal(await metricValue(p, 'ftp_proxy_sessions_active'), 0, `${what}: ftp_proxy_sessions_active is 0`)
  t.equal(await metricValue(p, 'ftp_proxy_port_pool_in_use'), 0, `${what}: ftp_proxy_port_pool_in_use is 0`)
  await waitFor(() => openFds() <= fds)
  t.equal(openFds(), fds, `${what}: open file descriptors back to ${fds}`)
}

/**
 * The end of every fault test: everything the fault touched is released, a fresh session
 * transfers a file with equal bytes, and that session releases everything too.
 */
export async function endsClean(t: Test, p: TestProxy, fds: number, name: string, expected: Buffer): Promise<void> {
  await assertReleased(t, p, fds, 'after the fault')
  await freshTransfer(t, p, name, expected)
  await assertReleased(t, p, fds, 'after the fresh session')
}

/**
 * A warm-up transfer before the fd baseline is taken (libuv and the fixtures open some
 * descriptors lazily on first use); returns the baseline.
 */
export async function baseline(t: Test, p: TestProxy, name: string, expected: Buffer): Promise<number> {
  await freshTransfer(t, p, name, expected, 'warm-up session')
  await waitFor(() => p.proxy.sessionCount === 0 && p.proxy.pool.inUse === 0)
  // Let the closes of the warm-up's sockets reach the kernel.
  await sleep(50)
  return openFds()
}

/** A raw control connection that reads bytes as they come, for replies RawFtp cannot frame. */
export class RawSocket {
  readonly socket: net.Socket
  readonly #chunks: Buffer[] = []
  #closed = false
  readonly closedPromise: Promise<void>

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on('data', (c: Buffer) => this.#chunks.push(c))
    socket.on('error', () => {})
    this.closedPromise = new Promise((resolve) =>
      socket.once('close', () => {
        this.#closed = true
        resolve()
      }),
    )
  }

  static async connect(host: string, port: number): Promise<RawSocket> {
    const socket = net.connect({ host, port })
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    return new RawSocket(socket)
  }

  get received(): Buffer {
    return Buffer.concat(this.#chunks)
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Waits until the bytes received contain `text` (latin1) or the socket closed; bounded. */
  async until(text: string | RegExp, ms = 5000): Promise<boolean> {
    const test = (): boolean => {
      const s = this.received.toString('latin1')
      return typeof text === 'string' ? s.includes(text) : text.test(s)
    }
    return waitFor(() => test() || this.#closed, ms).then(() => test())
  }

  close(): void {
    this.socket.destroy()
  }
}
