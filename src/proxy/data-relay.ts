// Bytes between a client leg and a server leg of a data connection: both ways, each FIN passed on
// by itself (allowHalfOpen), a broken leg turned into a reset of the other, never into a FIN.

import type net from 'node:net'
import { pooledReaderOf, whenEnded } from '../net/pooled-read.js'
import { watchSendQueue } from '../net/send-queue.js'

export interface RelayHooks {
  /** A leg reported an error (recorded by the owner; the legs' 'close' tells the rest). */
  readonly onError: (err: Error) => void
  /** Whether the relay has failed: a leg that closes then resets the other. */
  readonly failed: () => boolean
  /** Called once per leg when it closes. */
  readonly onClosed: () => void
  /** Called when either leg has been handed its last byte and our FIN. */
  readonly onFinish: () => void
  /** Whether the client's bytes are the payload (an upload): only then is its bare FIN a truncation. */
  readonly upload: () => boolean
}

/** Relays between `client` and `upstream`; reading starts when the caller resumes `client`. */
export function relayLegs(client: net.Socket, upstream: net.Socket, hooks: RelayHooks): void {
  client.setKeepAlive(true, 60_000)
  client.on('error', hooks.onError)
  client.on('close', hooks.onClosed)
  // An error on one leg resets the other: a broken transfer must not look complete. A FIN
  // would tell a server that an upload ended well (it would store the truncated file).
  client.on('close', () => {
    if (hooks.failed()) resetLeg(upstream)
  })
  upstream.on('close', () => {
    if (hooks.failed()) resetLeg(client)
  })
  // pipe() respects write() returning false; a clear leg reads into pooled buffers instead
  // (pooled-read.ts), with the same rule. With allowHalfOpen each FIN is forwarded on its own,
  // below, once it is known to be one.
  const pooledDown = pooledReaderOf(upstream)
  if (pooledDown !== undefined) pooledDown.relayTo(client, { end: false })
  else upstream.pipe(client, { end: false })
  const pooledUp = pooledReaderOf(client)
  if (pooledUp !== undefined) pooledUp.relayTo(upstream, { end: false })
  else client.pipe(upstream, { end: false })
  // Each end is passed on only once it is known to be a FIN: libuv reports an RST that arrives
  // right behind the data as a plain EOF, and a FIN forwarded then would make the server store a
  // truncated upload as complete, or give the client a truncated download as whole (the server's
  // 226 may still follow: vsftpd resets a data connection whose peer sent it bytes). An empty
  // write fails on a reset connection and succeeds on a half-closed one.
  // A reset whose error libuv has already reported elsewhere (to a write of the client's bytes,
  // say) still looks like a FIN here; the server's final reply then says 426, which the client
  // gets, but its data connection has ended cleanly. Holding the FIN for the final reply would
  // deadlock servers that wait for the data connection's close (TLS shutdown) before replying.
  whenEnded(upstream, () => {
    // The client's FIN went to the server already (an upload), or the leg is TLS, on which a
    // write after the server's close_notify may never call back: nothing to probe with.
    if (upstream.writableEnded || TCP_UNDER.has(upstream)) {
      client.end()
      return
    }
    // Bytes of the client's still wait to go to a server that has ended its side and may never
    // read them (a client that writes on a download): the probe would wait behind them, holding
    // the transfer until the server closes. Such a download is suspect: it ends with a reset.
    if (upstream.writableLength > 0) {
      hooks.onError(new Error("the server ended the download while the client's bytes on its data connection were still unsent to it"))
      resetLeg(client)
      return
    }
    upstream.write(Buffer.alloc(0), (err) => {
      if (err == null) {
        client.end()
        return
      }
      hooks.onError(err)
      resetLeg(client)
    })
  })
  whenEnded(client, () => {
    // A protected upload that ended with a bare FIN, no close_notify: a truncation (RFC 4217 and
    // TLS: only close_notify says the data is complete). The server must not store it. On a
    // download the client's end carries nothing (ftplib closes without close_notify once it
    // has every byte): it goes on as for a clear connection.
    if (TRUNCATED.has(client) && hooks.upload()) {
      hooks.onError(new Error("the client's protected data connection ended without close_notify (truncated)"))
      resetLeg(upstream)
      return
    }
    // After the server's FIN has been passed to the client (a download), there is nothing to
    // probe with, and nothing of the client's to lose.
    if (client.writableEnded) {
      upstream.end()
      return
    }
    client.write(Buffer.alloc(0), (err) => {
      if (err == null) {
        upstream.end()
        return
      }
      hooks.onError(err)
      resetLeg(upstream)
    })
  })
  client.once('finish', hooks.onFinish)
  upstream.once('finish', hooks.onFinish)
}

// A TLS leg's TCP socket: the kernel's send queue is the TCP socket's.
const TCP_UNDER = new WeakMap<net.Socket, net.Socket>()

// TLS client legs whose end was a bare TCP FIN, without close_notify (data-tls.ts finTap).
const TRUNCATED = new WeakSet<net.Socket>()

/** Records that a TLS leg ended without close_notify. */
export function markTruncated(tlsLeg: net.Socket): void {
  TRUNCATED.add(tlsLeg)
}

/** Records that `tlsLeg` runs over `tcp` (data-tls.ts). */
export function markTlsOver(tlsLeg: net.Socket, tcp: net.Socket): void {
  TCP_UNDER.set(tlsLeg, tcp)
}

/** Closes a leg with a TCP reset (RST) rather than a FIN; a no-op on a leg already closed. */
export function resetLeg(socket: net.Socket): void {
  if (TCP_UNDER.has(socket)) {
    // A TLS leg is destroyed without close_notify, which a TLS peer takes as a truncation. It
    // cannot be reset: the TLS socket has no reset, and resetting the TCP socket under a live
    // TLS socket crashes Node 20 (SIGSEGV; test/proxy/data-tls.test.ts).
    socket.destroy()
    return
  }
  if (socket.destroyed) return
  // libuv refuses to reset a socket whose side was already shut down (our FIN went out: a
  // download fully passed on, an upload's end forwarded): Node then reports an 'error' and
  // never closes the handle, so 'close' would never come. Such a leg has nothing to cut.
  if (socket.writableEnded) socket.destroy()
  else socket.resetAndDestroy()
}

/**
 * A finished transfer's client leg: our FIN goes after the data, and the descriptor is closed
 * once both are handed to the kernel (or `closeTimeoutMs` later), whether or not the client ever
 * closes its side (a client that keeps its data sockets would otherwise hold a descriptor each).
 * Closing does not cut what the kernel still holds: it goes on sending it (no SO_LINGER). The
 * promise resolves once that tail has left the send queue, or the queue has not shrunk for
 * `giveUpMs`.
 */
export function closeAfterTail(client: net.Socket, closeTimeoutMs: number, giveUpMs: number): Promise<void> {
  const tcp = TCP_UNDER.get(client) ?? client
  const ports = { localPort: tcp.localPort ?? 0, remotePort: tcp.remotePort ?? 0 }
  client.end()
  if (client.writableFinished) client.destroy()
  else {
    const timer = setTimeout(() => client.destroy(), closeTimeoutMs)
    client.once('finish', () => client.destroy())
    client.once('close', () => clearTimeout(timer))
  }
  let lastQueued = Number.POSITIVE_INFINITY
  let movedAt = performance.now()
  return new Promise((resolve) => {
    const stop = watchSendQueue(ports, (queued) => {
      const now = performance.now()
      if (queued !== null && queued > 0 && queued < lastQueued) {
        lastQueued = queued
        movedAt = now
      }
      if (queued === null || queued === 0 || now - movedAt >= giveUpMs) {
        stop()
        resolve()
      }
    })
  })
}
