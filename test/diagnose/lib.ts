// Helpers for the diagnose tests: capture what runDiagnose prints, list a report's fields as the
// docs name them, and a TCP forwarder that puts the client on another address than the server.
import { readFile } from 'node:fs/promises'
import net from 'node:net'
import { runDiagnose } from '../../src/diagnose/run.js'

export interface Run {
  code: number
  stdout: string
  stderr: string
}

/** runDiagnose in this process, its output collected. */
export async function diagnose(...argv: string[]): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const code = await runDiagnose(argv, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) })
  return { code, stdout, stderr }
}

/**
 * Every field path of a JSON value as docs/diagnose.md writes it: `pasv.probes[].listing.ok`;
 * `epsv.*` is documented as `pasv.*` (one shape); an array of strings is one field.
 */
export function fieldPaths(value: unknown, prefix = ''): string[] {
  if (Array.isArray(value)) {
    return value.flatMap((item) => (typeof item === 'object' && item !== null ? fieldPaths(item, `${prefix}[]`) : []))
  }
  if (typeof value !== 'object' || value === null) return []
  return Object.entries(value).flatMap(([key, child]) => {
    const path = prefix === '' ? key : `${prefix}.${key}`
    return [path.replace(/^epsv\b/, 'pasv'), ...fieldPaths(child, path)]
  })
}

/** The fields of `report` that docs/diagnose.md does not name in backquotes. */
export async function undocumented(report: unknown): Promise<string[]> {
  const doc = await readFile(new URL('../../docs/diagnose.md', import.meta.url), 'utf8')
  return [...new Set(fieldPaths(report))].filter((path) => !doc.includes(`\`${path}\``))
}

/**
 * Listens on `listen` and relays each connection to `to`, dialling from `from`: the server sees
 * `from` as its client and its own address as `to.host`, while the client reached `listen`.
 * That is the DEVFTP picture: the 227 names the server's own address, not the one the client dialled.
 */
export async function startForwarder(
  listen: { host: string; port: number },
  to: { host: string; port: number },
  from: string,
): Promise<{ close(): Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const track = (s: net.Socket): void => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    // A reset on one leg ends both: close carries it.
    s.on('error', () => {})
  }
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: to.host, port: to.port, localAddress: from })
    track(client)
    track(upstream)
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(listen.port, listen.host, () => resolve())
  })
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}

/**
 * A control port that misbehaves on cue: `greeting` is sent on connect (null: nothing, ever),
 * then `onLine` gets each command line and the socket.
 */
export async function startScripted(
  port: number,
  greeting: string | null,
  onLine: (line: string, socket: net.Socket) => void,
): Promise<{ close(): Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    if (greeting !== null) socket.write(`${greeting}\r\n`)
    let buffered = ''
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1')
      for (let lf = buffered.indexOf('\n'); lf !== -1; lf = buffered.indexOf('\n')) {
        const line = buffered.slice(0, lf).replace(/\r$/, '')
        buffered = buffered.slice(lf + 1)
        onLine(line, socket)
      }
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
