// Reads of a clear data connection land in 1 MiB buffers from a shared pool (net.connect's
// `onread`), and are written on from there: no 64 KiB allocation per read, no stream machinery
// between the two sockets. 1 GiB RETR through the proxy: 2.00 CPU s per GiB with pipe(), 0.63 now
// (BENCHMARKS.md).
//
// A buffer goes back to the pool only in its write's callback: until then the kernel may not have
// every byte of it, and a buffer reused early corrupts the data. Node fetches the buffer for the
// next read right after each read, so a reader that pauses still holds one.
//
// Only for clear legs: a TLS socket takes over the TCP socket's reads, and an onread socket under
// it would hand TLS records to the wrong reader (data-tls.ts refuses that).
//
// A socket the proxy dials gets `onread` from net.connect. One it accepted (a pool port) cannot:
// Node 20's net.Server has no `onread`, so its TCP handle, not yet read (pauseOnConnect), is
// moved into a new socket made with one (withPooledReads): Node's own constructor path for a
// socket on an existing handle, reached through the private `_handle` and `_server` fields.

import net from 'node:net'

/**
 * Bytes per pooled buffer: fewer, larger reads. 1 GiB RETR through the proxy here (npm run bench,
 * 3 runs): 256 KiB x 4 in flight 729 MB/s at 1.02 CPU s per GiB, 1 MiB x 4 1126 at 0.73, 1 MiB x 2
 * 1349 at 0.63 (BENCHMARKS.md).
 */
export const POOLED_BUFFER_BYTES = 1024 * 1024
/**
 * What a reader reads into before its relay starts: a small buffer of its own, not a pooled one, so
 * that a lease waiting for its client (a pool port that is never used, say) holds 2 x 16 KiB, not
 * 256 KiB or more. Before the relay the reader stops after one read anyway.
 */
const WAITING_BUFFER_BYTES = 16 * 1024
/** Writes in flight per reader before it stops reading: at most this many buffers (plus the next) per transfer. */
const MAX_IN_FLIGHT = 2
/**
 * Pooled buffers out at once over every transfer, in flight or armed for the next read (64 MiB):
 * past it, reads go into small buffers of their own, so that many slow clients at once cannot
 * hold a pooled buffer or three each.
 */
const MAX_OUTSTANDING = 64
const SMALL_BUFFER_BYTES = 64 * 1024
/** Buffers kept for reuse when no transfer needs them: 4 MiB at most (a transfer cycles 3), whatever the peak was. */
const MAX_FREE = 4
/** Pooled buffers taken and not yet given back. */
let outstanding = 0

const free: Buffer[] = []

function take(): Buffer {
  if (outstanding >= MAX_OUTSTANDING) return Buffer.allocUnsafe(SMALL_BUFFER_BYTES)
  outstanding++
  return free.pop() ?? Buffer.allocUnsafe(POOLED_BUFFER_BYTES)
}

/** A buffer is done with: a pooled one counts as given back, and is kept for reuse if there is room. */
function give(buf: Buffer): void {
  if (buf.length !== POOLED_BUFFER_BYTES) return
  outstanding--
  if (free.length < MAX_FREE) free.push(buf)
}

/** Buffers waiting in the pool now, and writes in flight over every reader (for tests). */
export function pooledBuffersFree(): number {
  return free.length
}

export function pooledBuffersOutstanding(): number {
  return outstanding
}

const READERS = new WeakMap<net.Socket, PooledReader>()

/** The pooled reader of a socket dialled with one (connectTo with `pooled`), if any. */
export function pooledReaderOf(socket: net.Socket): PooledReader | undefined {
  return READERS.get(socket)
}

/**
 * The reading side of one dialled socket: `onread` for net.connect, then `relayTo(target)` once
 * the other leg exists. Before that the first chunk read is held and reading stops, as the
 * kernel holds the rest.
 */
export class PooledReader {
  readonly onread: net.OnReadOpts
  #socket: net.Socket | null = null
  #target: net.Socket | null = null
  /** Read before the relay started: [view, its pool buffer]. */
  readonly #held: Array<[Buffer, Buffer]> = []
  #inFlight = 0
  #paused = false
  /** The buffer Node will read into next: given back when the socket closes without using it. */
  #armed: Buffer | null = null

  constructor() {
    this.onread = {
      // Called for the first read when the socket is made, and after each read for the next.
      buffer: () => {
        this.#armed = this.#target === null ? Buffer.allocUnsafe(WAITING_BUFFER_BYTES) : take()
        return this.#armed
      },
      callback: (n: number, buf: Uint8Array): boolean => this.#onRead(n, buf as Buffer),
    }
  }

  /** Ties the reader to the socket made with its `onread`. */
  attach(socket: net.Socket): void {
    this.#socket = socket
    READERS.set(socket, this)
    socket.once('close', () => {
      // The handle is closed: nothing reads into the armed buffer any more.
      if (this.#armed !== null) give(this.#armed)
      this.#armed = null
    })
  }

  /**
   * Writes everything read to `target` from now on, in order, at most MAX_IN_FLIGHT writes
   * ahead of it; ends `target` after the socket's FIN, as pipe() does, unless `end` is false
   * (the caller then watches the end with whenEnded). The FIN may have come before the relay
   * (a server that sent nothing and closed): the held bytes go first, then the end.
   */
  relayTo(target: net.Socket, { end = true }: { end?: boolean } = {}): void {
    const socket = this.#socket
    if (socket === null || this.#target !== null) throw new Error('a pooled reader relays once, from the socket it is attached to')
    this.#target = target
    target.on('drain', () => this.#resumeIfRoom())
    for (const [chunk, buf] of this.#held.splice(0)) this.#write(chunk, buf)
    if (end) whenEnded(socket, () => target.end())
    this.#paused = true
    this.#resumeIfRoom()
  }

  #onRead(n: number, buf: Buffer): boolean {
    if (buf === this.#armed) this.#armed = null
    const chunk = buf.subarray(0, n)
    if (this.#target === null) {
      this.#held.push([chunk, buf])
      this.#paused = true
      return false
    }
    if (this.#write(chunk, buf)) return true
    this.#paused = true
    return false
  }

  /** Hands one chunk to the target; whether reading may go on. */
  #write(chunk: Buffer, buf: Buffer): boolean {
    const target = this.#target as net.Socket
    this.#inFlight++
    const ok = target.write(chunk, () => {
      this.#inFlight--
      give(buf)
      this.#resumeIfRoom()
    })
    return ok && this.#inFlight < MAX_IN_FLIGHT
  }

  #resumeIfRoom(): void {
    const socket = this.#socket
    const target = this.#target
    if (!this.#paused || socket === null || target === null || socket.destroyed) return
    if (this.#inFlight >= MAX_IN_FLIGHT || target.writableNeedDrain) return
    this.#paused = false
    socket.resume()
  }
}

/**
 * Calls `fn` once `socket` has emitted 'end', at once if it already has: a socket that reads from
 * the moment it connects (onread) may have read its peer's FIN before anyone listened.
 */
export function whenEnded(socket: net.Socket, fn: () => void): void {
  if (socket.readableEnded) fn()
  else socket.once('end', fn)
}

interface HandleFields {
  _handle: { reading?: boolean } | null
  _server: unknown
}

/**
 * `socket` reading into pooled buffers: itself when it was dialled so; a new socket on its TCP
 * handle when it was accepted and nothing was read from it yet; else itself unchanged (it then
 * relays with pipe()). The old object is destroyed without closing the handle, and the server's
 * count of connections (maxConnections) moves to the new one.
 */
export function withPooledReads(socket: net.Socket): net.Socket {
  if (READERS.has(socket)) return socket
  const old = socket as unknown as HandleFields
  const handle = old._handle
  if (handle === null || handle.reading === true || socket.bytesRead > 0 || socket.destroyed || socket.readableLength > 0) return socket
  const reader = new PooledReader()
  // pauseOnCreate: no read until the relay resumes it (net.Server's own option for accepted sockets).
  const options = { handle, onread: reader.onread, allowHalfOpen: true, readable: true, writable: true, pauseOnCreate: true } as net.SocketConstructorOpts
  const fresh = new net.Socket(options)
  const server = old._server
  old._handle = null
  old._server = null
  ;(fresh as unknown as HandleFields)._server = server
  socket.destroy()
  reader.attach(fresh)
  return fresh
}
