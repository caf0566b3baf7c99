// A minimal FTP client for the `demo` command: log in, fetch one file in passive mode, quit.
// It dials exactly the address a 227 names, as wget and PRODFTP's own client do, so against a
// server that advertises an unreachable address it fails the way those clients fail.

import { connect } from 'node:net'
import type { Socket } from 'node:net'

export interface FetchOptions {
  host: string
  port: number
  path: string
  /** Default 'anonymous'. */
  user?: string
  /** Default 'anonymous@'. */
  password?: string
  /** Limit for each wait: connect, every reply, data inactivity. Default 10 000 ms. */
  timeoutMs?: number
  /** 'pasv' (default) dials the address in the 227; 'epsv' dials the control host at the 229 port. */
  mode?: 'pasv' | 'epsv'
}

export interface FetchResult {
  ok: boolean
  data?: Buffer
  /** Every control line, '> ' for sent (the password masked) and '< ' for received. */
  transcript: string[]
  error?: string
}

interface Reply {
  code: number
  /** Every line of the reply, joined with '\n'. */
  text: string
}

/** A reply longer than this is an error, not unbounded memory. */
const MAX_LINE_BYTES = 8192

export async function fetchFile(options: FetchOptions): Promise<FetchResult> {
  const timeoutMs = options.timeoutMs ?? 10_000
  const transcript: string[] = []
  let control: ControlConnection | undefined
  let data: DataConnection | undefined
  try {
    const fields = [options.path, options.user ?? '', options.password ?? '']
    if (fields.some((field) => /[\r\n]/.test(field))) {
      throw new Error('path, user and password must not contain CR or LF')
    }
    control = await ControlConnection.open(options.host, options.port, timeoutMs, transcript)
    expect('greeting', await control.read(), 220)
    let login = await control.command(`USER ${options.user ?? 'anonymous'}`)
    if (login.code === 331) login = await control.command(`PASS ${options.password ?? 'anonymous@'}`)
    expect('login', login, 230)
    expect('TYPE I', await control.command('TYPE I'), 200)
    const target =
      options.mode === 'epsv'
        ? { host: options.host, port: parse229(expect('EPSV', await control.command('EPSV'), 229)) }
        : parse227(expect('PASV', await control.command('PASV'), 227))
    data = await DataConnection.open(target.host, target.port, timeoutMs)
    expect('RETR', await control.command(`RETR ${options.path}`), 125, 150)
    // The transfer is done only when both the data EOF and the final reply have arrived.
    const [bytes, final] = await Promise.all([data.received, control.read()])
    expect('RETR', final, 226, 250)
    expect('QUIT', await control.command('QUIT'), 221)
    return { ok: true, data: bytes, transcript }
  } catch (err) {
    data?.destroy()
    await control?.quitQuietly()
    return { ok: false, transcript, error: err instanceof Error ? err.message : String(err) }
  } finally {
    control?.destroy()
  }
}

function expect(step: string, reply: Reply, ...codes: number[]): Reply {
  if (!codes.includes(reply.code)) throw new Error(`${step} failed: ${reply.text}`)
  return reply
}

/** The tuple may stand anywhere in the reply, on any line; every value must be an octet. */
function parse227(reply: Reply): { host: string; port: number } {
  const match = /(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})/.exec(reply.text)
  const values = match?.slice(1).map(Number) ?? []
  const [h1, h2, h3, h4, p1 = 0, p2 = 0] = values
  const port = p1 * 256 + p2
  if (values.length !== 6 || values.some((value) => value > 255) || port === 0) {
    throw new Error(`PASV failed: no valid address in ${JSON.stringify(reply.text)}`)
  }
  return { host: `${h1}.${h2}.${h3}.${h4}`, port }
}

/** RFC 2428 3: (<d><d><d>port<d>), the delimiter any of ASCII 33-126. */
function parse229(reply: Reply): number {
  const match = /\(([!-~])\1\1(\d{1,5})\1\)/.exec(reply.text)
  const port = Number(match?.[2] ?? 0)
  if (port < 1 || port > 65535) throw new Error(`EPSV failed: no valid port in ${JSON.stringify(reply.text)}`)
  return port
}

class ControlConnection {
  private buffered: Buffer = Buffer.alloc(0)
  /** The first line of a multi-line reply still being read, and the lines so far. */
  private partial: { code: string; lines: string[] } | undefined
  private readonly replies: Reply[] = []
  /** Reads waiting for a reply, served in order. */
  private readonly waiters: Array<{ resolve: (reply: Reply) => void; reject: (err: Error) => void }> = []
  private failure: Error | undefined

  private constructor(
    private readonly socket: Socket,
    private readonly timeoutMs: number,
    private readonly transcript: string[],
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', (err) => {
      this.failure ??= err
    })
    socket.on('close', () => this.fail(new Error('control connection closed')))
  }

  static open(host: string, port: number, timeoutMs: number, transcript: string[]): Promise<ControlConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port, timeout: timeoutMs })
      const fail = (err: Error): void => {
        reject(new Error(`control connection to ${host}:${port} failed: ${err.message}`))
      }
      socket.once('error', fail)
      socket.once('timeout', () => socket.destroy(new Error(`timed out after ${timeoutMs} ms`)))
      socket.once('connect', () => {
        socket.off('error', fail)
        socket.setTimeout(0)
        resolve(new ControlConnection(socket, timeoutMs, transcript))
      })
    })
  }

  command(line: string): Promise<Reply> {
    this.send(line)
    return this.read()
  }

  private send(line: string): void {
    this.transcript.push(`> ${line.startsWith('PASS ') ? 'PASS ****' : line}`)
    this.socket.write(`${line}\r\n`)
  }

  /** The next reply; concurrent reads get the replies in the order the reads were made. */
  read(): Promise<Reply> {
    const reply = this.replies.shift()
    if (reply) return Promise.resolve(reply)
    if (this.failure) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => {
      // A control connection that stops answering is of no further use: fail it as a whole.
      const timer = setTimeout(() => this.fail(new Error(`no reply within ${this.timeoutMs} ms`)), this.timeoutMs)
      this.waiters.push({
        resolve: (value) => {
          clearTimeout(timer)
          resolve(value)
        },
        reject: (err) => {
          clearTimeout(timer)
          reject(err)
        },
      })
    })
  }

  /**
   * After a failure: say QUIT if the connection still works, so the server ends the session
   * cleanly. Replies still owed to earlier commands (a 426 after a broken transfer) come first.
   */
  async quitQuietly(): Promise<void> {
    if (this.failure || !this.socket.writable) return
    try {
      this.send('QUIT')
      let reply = await this.read()
      while (reply.code !== 221) reply = await this.read()
    } catch {
      // The session is over either way; the first error is the one the caller reports.
    }
  }

  destroy(): void {
    this.socket.destroy()
  }

  private onData(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
    for (let lf = this.buffered.indexOf(0x0a); lf !== -1; lf = this.buffered.indexOf(0x0a)) {
      const line = this.buffered.subarray(0, lf).toString('utf8').replace(/\r$/, '')
      this.buffered = this.buffered.subarray(lf + 1)
      this.transcript.push(`< ${line}`)
      this.onLine(line)
    }
    if (this.buffered.length > MAX_LINE_BYTES) this.fail(new Error(`reply line longer than ${MAX_LINE_BYTES} bytes`))
  }

  private onLine(line: string): void {
    if (this.partial) {
      // RFC 959 4.2: a multi-line reply ends on a line of the same code followed by a space (a
      // bare code is taken too); lines in between may look like anything, other codes included.
      this.partial.lines.push(line)
      if (line === this.partial.code || line.startsWith(`${this.partial.code} `)) {
        this.deliver({ code: Number(this.partial.code), text: this.partial.lines.join('\n') })
        this.partial = undefined
      }
      return
    }
    const match = /^(\d{3})([ -]|$)/.exec(line)
    const code = match?.[1]
    if (code === undefined) return this.fail(new Error(`malformed reply line: ${JSON.stringify(line)}`))
    if (match?.[2] === '-') this.partial = { code, lines: [line] }
    else this.deliver({ code: Number(code), text: line })
  }

  private deliver(reply: Reply): void {
    const waiter = this.waiters.shift()
    if (waiter) waiter.resolve(reply)
    else this.replies.push(reply)
  }

  private fail(err: Error): void {
    this.failure ??= err
    for (const waiter of this.waiters.splice(0)) waiter.reject(this.failure)
    this.socket.destroy()
  }
}

class DataConnection {
  /** Every byte up to the server's EOF; rejects if the connection breaks first. */
  readonly received: Promise<Buffer>

  private constructor(private readonly socket: Socket) {
    this.received = new Promise((resolve, reject) => {
      const chunks: Buffer[] = []
      let failure: Error | undefined
      socket.on('data', (chunk: Buffer) => chunks.push(chunk))
      socket.on('error', (err) => {
        failure ??= err
      })
      socket.on('end', () => resolve(Buffer.concat(chunks)))
      socket.on('close', () => reject(new Error(`data connection broke: ${failure?.message ?? 'closed before EOF'}`)))
    })
    // Awaited once RETR is accepted; when the session fails earlier nobody is left to await it.
    this.received.catch(() => {})
  }

  static open(host: string, port: number, timeoutMs: number): Promise<DataConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port, timeout: timeoutMs })
      const fail = (err: Error): void => reject(new Error(`data connection to ${host}:${port} failed: ${err.message}`))
      socket.once('error', fail)
      // The same timeout limits the connect and, after it, inactivity: a stalled transfer fails too.
      socket.on('timeout', () => socket.destroy(new Error(`timed out after ${timeoutMs} ms`)))
      socket.once('connect', () => {
        socket.off('error', fail)
        resolve(new DataConnection(socket))
      })
    })
  }

  destroy(): void {
    this.socket.destroy()
  }
}
