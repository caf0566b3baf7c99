// A minimal FTP client for the `demo` command: log in, fetch one file in passive mode, quit.
// It dials exactly the address a 227 names, as wget and PRODFTP's own client do, so against a
// server that advertises an unreachable address it fails the way those clients fail.

import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { BadPassiveReplyError } from '../errors.js'
import { FtpControl, type Reply } from '../net/ftp-control.js'
import { parsePassiveReply, replyText } from '../protocol/replies.js'

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

export async function fetchFile(options: FetchOptions): Promise<FetchResult> {
  const timeoutMs = options.timeoutMs ?? 10_000
  const transcript: string[] = []
  let control: FtpControl | undefined
  let data: DataConnection | undefined
  try {
    const fields = [options.path, options.user ?? '', options.password ?? '']
    if (fields.some((field) => /[\r\n]/.test(field))) {
      throw new Error('path, user and password must not contain CR or LF')
    }
    control = await FtpControl.open(options.host, options.port, { timeoutMs, transcript })
    expect('greeting', await control.read(), 220)
    let login = await control.command(`USER ${options.user ?? 'anonymous'}`)
    if (login.code === 331) login = await control.command(`PASS ${options.password ?? 'anonymous@'}`)
    expect('login', login, 230)
    expect('TYPE I', await control.command('TYPE I'), 200)
    const command = options.mode === 'epsv' ? 'EPSV' : 'PASV'
    const target = passiveTarget(command, expect(command, await control.command(command), command === 'EPSV' ? 229 : 227), options.host)
    data = await DataConnection.open(target.host, target.port, timeoutMs)
    expect('RETR', await control.command(`RETR ${options.path}`), 125, 150)
    // The transfer is done only when both the data EOF and the final reply have arrived.
    const [bytes, final] = await Promise.all([data.received, control.read()])
    expect('RETR', final, 226, 250)
    expect('QUIT', await control.command('QUIT'), 221)
    return { ok: true, data: bytes, transcript }
  } catch (err) {
    data?.destroy()
    await control?.quit()
    return { ok: false, transcript, error: err instanceof Error ? err.message : String(err) }
  } finally {
    control?.close()
  }
}

function expect(step: string, reply: Reply, ...codes: number[]): Reply {
  if (reply.code === null || !codes.includes(reply.code)) throw new Error(`${step} failed: ${replyText(reply)}`)
  return reply
}

/** Where the passive reply says to connect: a 227's address as it stands, or the control host for a 229. */
function passiveTarget(command: 'PASV' | 'EPSV', reply: Reply, controlHost: string): { host: string; port: number } {
  const text = replyText(reply)
  try {
    const endpoint = parsePassiveReply(command === 'PASV' ? 227 : 229, text)
    return { host: endpoint.host ?? controlHost, port: endpoint.port }
  } catch (err) {
    if (!(err instanceof BadPassiveReplyError)) throw err
    throw new Error(`${command} failed: no valid ${command === 'PASV' ? 'address' : 'port'} in ${JSON.stringify(text)} (${err.message})`)
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
