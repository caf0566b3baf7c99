// A bench's FTP client steps over a raw control connection (test/fixtures/raw-ftp.ts), each with
// a deadline, each failure named by its step so that a run can count failures by reason. The
// bench process dials, sends and reads; no curl per session (1,000 curl processes would measure
// fork, not the proxy).
import net from 'node:net'
import { pasvEndpoint, RawFtp, type RawReply } from '../test/fixtures/raw-ftp.js'

/** A step that went wrong; `reason` is short and stable ("PASV: 425", "RETR data: timeout") so that failures can be counted by it. */
export class StepFailure extends Error {
  constructor(readonly reason: string) {
    super(reason)
  }
}

/** The reason of any error: a StepFailure's own, else the error's code or message. */
export function reasonOf(err: unknown): string {
  if (err instanceof StepFailure) return err.reason
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (typeof code === 'string') return code
  return err instanceof Error ? err.message : String(err)
}

/** A TCP connection to 127.x host:port, resolved once connected; destroyed on failure or after `timeoutMs`. */
export function dial(host: string, port: number, step: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new StepFailure(`${step}: no connection within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      reject(new StepFailure(`${step}: ${err.code ?? err.message}`))
    })
    socket.once('connect', () => {
      clearTimeout(timer)
      resolve(socket)
    })
  })
}

/** A control connection, its greeting read (220 expected). */
export async function openControl(port: number, timeoutMs: number): Promise<RawFtp> {
  const ftp = RawFtp.over(await dial('127.0.0.1', port, 'connect', timeoutMs))
  try {
    await final(ftp, 'greeting', [220], timeoutMs)
  } catch (err) {
    ftp.close()
    throw err
  }
  return ftp
}

/**
 * The next final reply (1xx skipped), which must have one of `codes`; a StepFailure naming the
 * step and the code that came, or a closed connection, or the deadline.
 */
export async function final(ftp: RawFtp, step: string, codes: readonly number[], timeoutMs: number): Promise<RawReply> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let r: RawReply | null
    try {
      r = await ftp.reply(Math.max(1, deadline - Date.now()))
    } catch {
      throw new StepFailure(`${step}: no reply within ${timeoutMs} ms`)
    }
    if (r === null) throw new StepFailure(`${step}: connection closed`)
    if (r.code < 200) continue
    // The code and the reply's first words (vsftpd's "500 OOPS: vsf_sysutil_bind", say), few enough
    // that failures of one kind count together.
    if (!codes.includes(r.code)) throw new StepFailure(`${step}: ${r.code} ${r.text.replace(/^\d{3}[ -]/, '').split(/\s+/).slice(0, 3).join(' ')}`.trimEnd())
    return r
  }
}

/** Sends one command and returns its final reply, which must have one of `codes`. */
export function command(ftp: RawFtp, line: string, codes: readonly number[], timeoutMs: number): Promise<RawReply> {
  ftp.socket.write(`${line}\r\n`)
  return final(ftp, line.split(' ')[0]!, codes, timeoutMs)
}

/** Anonymous login: USER, and PASS when asked (vsftpd with no_anon_password answers USER with 230). */
export async function login(ftp: RawFtp, timeoutMs: number): Promise<void> {
  const u = await command(ftp, 'USER anonymous', [230, 331], timeoutMs)
  if (u.code === 331) await command(ftp, 'PASS anonymous@', [230], timeoutMs)
}

/** PASV and a connection to the endpoint its 227 names (honoured, as PRODFTP's client did). */
export async function pasvConnect(ftp: RawFtp, timeoutMs: number): Promise<net.Socket> {
  const r = await command(ftp, 'PASV', [227], timeoutMs)
  let ep: { host: string; port: number }
  try {
    ep = pasvEndpoint(r.text)
  } catch {
    throw new StepFailure('PASV: unreadable 227')
  }
  return dial(ep.host, ep.port, 'data connect', timeoutMs)
}

/** Reads a data connection to its end; resolves with the bytes, or their count when `keep` is false. */
export function readToEnd(socket: net.Socket, step: string, timeoutMs: number, keep: boolean): Promise<{ bytes: number; data: Buffer | null }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let bytes = 0
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new StepFailure(`${step}: data not ended within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.on('data', (c: Buffer) => {
      bytes += c.length
      if (keep) chunks.push(c)
    })
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      reject(new StepFailure(`${step}: ${err.code ?? err.message}`))
    })
    socket.once('end', () => {
      clearTimeout(timer)
      socket.destroy()
      resolve({ bytes, data: keep ? Buffer.concat(chunks) : null })
    })
  })
}

/** "reason: count" pairs, most frequent first, for a report. */
export function countReasons(failures: readonly string[]): Array<[string, number]> {
  const m = new Map<string, number>()
  for (const f of failures) m.set(f, (m.get(f) ?? 0) + 1)
  return [...m.entries()].sort((a, b) => b[1] - a[1])
}
