// Dialling: one TCP connect with a deadline, and candidates tried in order. Used by the proxy for
// the server's data endpoints and by diagnose for the same probe.

import net from 'node:net'
import { Deadline } from '../deadline.js'
import { DialError, type DialAttempt, type DialFailure } from '../errors.js'
import type { DataCandidate } from './address-policy.js'
import { PooledReader } from './pooled-read.js'

export type { DialAttempt } from '../errors.js'

/** Maps a connect error to why it failed: refused, timed out, or anything else unreachable. */
export function dialFailure(code: string | undefined): DialFailure {
  if (code === 'ECONNREFUSED') return 'refused'
  if (code === 'ETIMEDOUT') return 'timeout'
  return 'unreachable'
}

/**
 * Dials the candidates in order, each within `timeoutMs`, from `localAddress` (the local
 * address of the upstream control socket: vsftpd refuses a data connection from another IP).
 * Resolves with the first socket that connects; rejects with every attempt's error.
 */
export async function dialFirst(
  candidates: readonly DataCandidate[],
  port: number,
  localAddress: string | undefined,
  timeoutMs: number,
  pooled = false,
): Promise<{ socket: net.Socket; candidate: DataCandidate; attempts: DialAttempt[] }> {
  const attempts: DialAttempt[] = []
  let lastCode: string | undefined
  for (const candidate of candidates) {
    const started = performance.now()
    try {
      const socket = await connectTo(candidate.host, port, localAddress, timeoutMs, pooled)
      attempts.push({ host: candidate.host, port, kind: candidate.kind, ms: performance.now() - started })
      return { socket, candidate, attempts }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      lastCode = code
      attempts.push({
        host: candidate.host,
        port,
        kind: candidate.kind,
        error: code ?? (err as Error).message,
        ms: performance.now() - started,
      })
    }
  }
  throw new DialError(dialFailure(lastCode), attempts)
}

/**
 * One TCP connect within `timeoutMs`, from `localAddress` when it is of the target's family.
 * The deadline is a Deadline: a connect that completed while the loop stalled is not a timeout.
 * `pooled`: its reads land in pooled buffers (pooled-read.ts), for a clear leg the relay reads.
 */
export function connectTo(host: string, port: number, localAddress: string | undefined, timeoutMs: number, pooled = false): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const reader = pooled ? new PooledReader() : null
    const options: net.NetConnectOpts = { host, port, allowHalfOpen: true, ...(reader === null ? {} : { onread: reader.onread }) }
    // A local address of the other family cannot be bound for this target: let the kernel pick.
    if (localAddress !== undefined && net.isIP(localAddress) === net.isIP(host)) options.localAddress = localAddress
    const socket = net.connect(options)
    reader?.attach(socket)
    let settled = false
    const fail = (err: Error): void => {
      if (settled) return
      settled = true
      deadline.cancel()
      socket.destroy()
      reject(err)
    }
    const deadline = new Deadline(timeoutMs, () => {
      fail(Object.assign(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' }))
    })
    socket.once('connect', () => {
      if (settled) return
      settled = true
      deadline.cancel()
      // Until its owner takes it (the other leg may still be connecting), an error on the socket
      // must not go unhandled; the owner's own listeners and 'close' tell the rest.
      socket.on('error', () => {})
      resolve(socket)
    })
    socket.once('error', fail)
  })
}
