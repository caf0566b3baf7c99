// One FTP control connection as a client: commands out, assembled replies in (LineFramer and
// ReplyAssembler, as the proxy reads a server, so its limits hold here too). Used by `demo` (to
// fetch a file the way PRODFTP's clients do) and by `diagnose` (to probe a server). A reply that
// does not come within the timeout, or a closed connection, fails every later read: the
// conversation can no longer be trusted.

import type { Socket } from 'node:net'
import { lineText, LineFramer } from '../protocol/line-framer.js'
import { ReplyAssembler, type Reply } from '../protocol/replies.js'
import { normalizeAddress } from './address-policy.js'
import { connectTo } from './dial.js'

export type { Reply } from '../protocol/replies.js'

// RFC 959 puts no bound on a line; these are far above any real reply.
const MAX_LINE_BYTES = 8192
const MAX_REPLY_BYTES = 64 * 1024

export interface FtpControlOptions {
  /** Limit for the connect and for each reply. */
  readonly timeoutMs: number
  /** When given, every control line is appended: '> ' sent (a password masked), '< ' received. */
  readonly transcript?: string[]
}

export class FtpControl {
  readonly #socket: Socket
  readonly #timeoutMs: number
  readonly #transcript: string[] | undefined
  readonly #framer = new LineFramer({ maxLineBytes: MAX_LINE_BYTES })
  readonly #assembler = new ReplyAssembler(MAX_REPLY_BYTES)
  readonly #replies: Reply[] = []
  /** Reads waiting for a reply, served in the order they were made. */
  readonly #waiters: Array<{ resolve: (reply: Reply) => void; reject: (err: Error) => void }> = []
  #failure: Error | null = null
  /** The server's address, normalised (an IPv4-mapped IPv6 address as IPv4). */
  readonly peer: string
  readonly localAddress: string | undefined

  private constructor(socket: Socket, options: FtpControlOptions) {
    this.#socket = socket
    this.#timeoutMs = options.timeoutMs
    this.#transcript = options.transcript
    this.peer = normalizeAddress(socket.remoteAddress ?? '')
    this.localAddress = socket.localAddress
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    // connectTo opens sockets with allowHalfOpen: the server's FIN ends the conversation.
    socket.on('end', () => socket.destroy())
    socket.on('error', (err) => this.#fail(err))
    socket.on('close', () => this.#fail(new Error('the server closed the control connection')))
  }

  /** Connects; a failure is an error saying where, with the connect error's code kept. */
  static async open(host: string, port: number, options: FtpControlOptions): Promise<FtpControl> {
    try {
      return new FtpControl(await connectTo(host, port, undefined, options.timeoutMs), options)
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      throw Object.assign(new Error(`control connection to ${host}:${port} failed: ${e.message}`), { code: e.code })
    }
  }

  /** Sends one command line and reads the next reply. */
  command(line: string): Promise<Reply> {
    if (this.#failure === null) {
      this.#transcript?.push(`> ${/^PASS /i.test(line) ? 'PASS ****' : line}`)
      this.#socket.write(`${line}\r\n`)
    }
    return this.read()
  }

  /** The next reply; concurrent reads get the replies in the order the reads were made. */
  read(): Promise<Reply> {
    const reply = this.#replies.shift()
    if (reply !== undefined) return Promise.resolve(reply)
    if (this.#failure !== null) return Promise.reject(this.#failure)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(new Error(`no reply within ${this.#timeoutMs} ms`)), this.#timeoutMs)
      this.#waiters.push({
        resolve: (r) => {
          clearTimeout(timer)
          resolve(r)
        },
        reject: (err) => {
          clearTimeout(timer)
          reject(err)
        },
      })
    })
  }

  /**
   * Says QUIT while the conversation still works, so that the server ends the session cleanly;
   * replies still owed to earlier commands (a 426 after a broken transfer) are read first. Then
   * closes. Never throws: the session is over either way.
   */
  async quit(): Promise<void> {
    if (this.#failure === null && this.#socket.writable) {
      try {
        let reply = await this.command('QUIT')
        while (reply.code !== 221) reply = await this.read()
      } catch {
        // The first error is the one the caller reports.
      }
    }
    this.close()
  }

  close(): void {
    this.#socket.destroy()
  }

  #onData(chunk: Buffer): void {
    try {
      for (const line of this.#framer.push(chunk)) {
        this.#transcript?.push(`< ${lineText(line)}`)
        const reply = this.#assembler.push(line)
        // A line outside any reply (no code) answers nothing; skip it.
        if (reply === null || reply.code === null) continue
        const waiter = this.#waiters.shift()
        if (waiter === undefined) this.#replies.push(reply)
        else waiter.resolve(reply)
      }
    } catch (err) {
      this.#fail(err as Error)
    }
  }

  #fail(err: Error): void {
    this.#failure ??= err
    for (const waiter of this.#waiters.splice(0)) waiter.reject(this.#failure)
    this.#socket.destroy()
  }
}
