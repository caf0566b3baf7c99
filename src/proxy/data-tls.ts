// Protected data connections (RFC 4217 9, PROT P): each data leg is TLS when its side asked for
// P. Toward the client the proxy is the TLS server, and may demand that the handshake resume the
// client's control session (--client-data-tls-reuse required: a stolen data port yields nothing);
// toward the server it is the TLS client and resumes its own control session with the server,
// which vsftpd requires (require_ssl_reuse). The pre-dial before the 227 stays a TCP check: a
// handshake that fails later ends the transfer as tls_handshake.

import type net from 'node:net'
import { Duplex } from 'node:stream'
import tls from 'node:tls'
import { Deadline } from '../deadline.js'
import { pooledReaderOf } from '../net/pooled-read.js'
import { clientCertificateProblem, clientSocket, serverSocket, type ClientTlsSide, type ServerTlsOptions } from '../net/tls.js'
import type { ProxyMetrics } from '../observe/metrics.js'
import { markTlsOver, markTruncated } from './data-relay.js'

export interface DataTls {
  /** The client's leg: the proxy's context, and whether the handshake must resume. */
  readonly client: { readonly side: ClientTlsSide; readonly requireReuse: boolean } | null
  /** The server's leg: how to check it, and the control session to resume. */
  readonly server: { readonly options: ServerTlsOptions; readonly session: Buffer | undefined } | null
  readonly timeoutMs: number
  readonly metrics: ProxyMetrics
}

/**
 * The legs a relay runs on: TLS sockets over the TCP ones where a side is protected. A failed
 * handshake, a client that does not resume when it must, or the deadline calls `onFail` once,
 * before the legs close; the TLS socket is then destroyed.
 */
export function protectLegs(
  client: net.Socket,
  upstream: net.Socket,
  dataTls: DataTls | undefined,
  onFail: (err: Error) => void,
): { readonly client: net.Socket; readonly upstream: net.Socket } {
  if (dataTls === undefined) return { client, upstream }
  let failed = false
  const counted = new WeakSet<tls.TLSSocket>()
  const fail = (t: tls.TLSSocket, side: 'client' | 'server', err: Error): void => {
    if (counted.has(t)) return
    counted.add(t)
    dataTls.metrics.tlsHandshake(side, 'data', 'failed')
    if (!failed) onFail(err)
    failed = true
    t.destroy()
  }
  let clientLeg: net.Socket = client
  if (dataTls.client !== null) {
    const { side, requireReuse } = dataTls.client
    // Over a tap of the TCP socket, not the socket itself: the tap sees the TCP FIN before TLS
    // does, which tells a client's close_notify from a bare FIN (a truncated upload).
    // The relay's keepalive would reach a TLS socket over a stream, which has no TCP to set.
    client.setKeepAlive(true, 60_000)
    let t: tls.TLSSocket | null = null
    const tap = finTap(client, () => {
      if (t !== null && !eofSeen(t)) markTruncated(t)
    })
    t = serverSocket(tap, side)
    markTlsOver(t, client)
    watch(t, 'secure', dataTls.timeoutMs, (err) => fail(t, 'client', err), () => {
      const resumed = t.isSessionReused()
      const problem = clientCertificateProblem(t, side)
      if (problem !== null) {
        fail(t, 'client', problem)
        return
      }
      if (requireReuse && !resumed) {
        fail(t, 'client', new Error("the client's data connection did not resume its control connection's TLS session (--client-data-tls-reuse required)"))
        return
      }
      dataTls.metrics.tlsHandshake('client', 'data', resumed ? 'resumed' : 'ok')
    })
    clientLeg = t
  }
  let upstreamLeg: net.Socket = upstream
  if (dataTls.server !== null) {
    // A socket dialled for pooled reads would hand the TLS records to the relay (pooled-read.ts).
    if (pooledReaderOf(upstream) !== undefined) throw new Error('a server data leg dialled for clear reads cannot carry TLS')
    const { options, session } = dataTls.server
    const t = clientSocket(upstream, options, session)
    markTlsOver(t, upstream)
    watch(t, 'secureConnect', dataTls.timeoutMs, (err) => fail(t, 'server', err), () => {
      dataTls.metrics.tlsHandshake('server', 'data', t.isSessionReused() ? 'resumed' : 'ok')
    })
    upstreamLeg = t
  }
  return { client: clientLeg, upstream: upstreamLeg }
}

/**
 * A Duplex over a TCP socket that passes the TCP FIN on to its reader one event-loop turn late,
 * after every byte before it has been handed on; `onFin` runs just before. A TLS socket over it
 * has then seen its peer's close_notify if there was one: if it has not, the peer sent a bare
 * FIN. Node's TLS API reports both as the same 'end', later, once the data is read.
 */
function finTap(tcp: net.Socket, onFin: () => void): Duplex {
  let fin: 'no' | 'waiting' | 'passed' = 'no'
  // The FIN waits until the reader (the TLS layer) has taken every byte before it.
  const passFin = (): void => {
    if (fin !== 'waiting' || stream.destroyed) return
    // The reader takes the rest when it reads again (the server may be slow to take it): look
    // every few milliseconds until it has, not every turn.
    if (stream.readableLength > 0) {
      setTimeout(passFin, 5)
      return
    }
    fin = 'passed'
    setImmediate(() => {
      onFin()
      stream.push(null)
    })
  }
  const stream = new Duplex({
    allowHalfOpen: true,
    read() {
      tcp.resume()
      passFin()
    },
    write(chunk: Buffer, _encoding, done) {
      tcp.write(chunk, done)
    },
    final(done) {
      tcp.end()
      done()
    },
    destroy(err, done) {
      tcp.destroy()
      done(err)
    },
  })
  tcp.on('data', (chunk: Buffer) => {
    if (!stream.push(chunk)) tcp.pause()
  })
  tcp.once('end', () => {
    fin = 'waiting'
    passFin()
  })
  tcp.on('error', (err) => stream.destroy(err))
  tcp.once('close', () => stream.destroy())
  return stream
}

/**
 * Whether the TLS layer has reached the end of the peer's data (close_notify), whether or not
 * its reader has taken the bytes before it. Node has no public property for this ('end' and
 * readableEnded wait for the reader): the readable state's `ended` is read, as Node's own
 * stream utilities do.
 */
function eofSeen(t: tls.TLSSocket): boolean {
  return (t as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended === true
}

/** Calls `onSecure` when the handshake is done, or `onFail` first (an error, a close, the deadline). */
function watch(t: tls.TLSSocket, event: 'secure' | 'secureConnect', timeoutMs: number, onFail: (err: Error) => void, onSecure: () => void): void {
  let secure = false
  const deadline = new Deadline(timeoutMs, () => onFail(new Error(`TLS handshake not done within ${timeoutMs} ms`)))
  t.once(event, () => {
    secure = true
    deadline.cancel()
    onSecure()
  })
  // Registered before the relay's own listeners: the reason is known before the legs close.
  t.on('error', (err) => {
    if (secure) return
    deadline.cancel()
    onFail(err)
  })
  t.once('close', () => deadline.cancel())
}
