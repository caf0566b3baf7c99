// One control leg: the peer's stream, the bytes it sent that are not yet taken as lines, and the
// one writer toward it. The session reaches the stream only through this, so that the stream can
// be replaced in the middle of the session (AUTH TLS makes a TLS socket of the plain one) with
// the session's handlers moved to the new stream and no byte lost or read twice.

import type { Duplex } from 'node:stream'
import { LegWriter } from './leg-writer.js'
import type { LineReader } from './line-reader.js'

export interface LegHandlers {
  /** Bytes arrived from the peer. */
  readonly onData: (chunk: Buffer) => void
  /** The peer's FIN. */
  readonly onEnd: () => void
  readonly onError: (err: NodeJS.ErrnoException) => void
  /** The stream closed (the current one: a replaced stream's close is not reported). */
  readonly onClose: () => void
  /** A backed-up leg takes bytes again. */
  readonly onDrain: () => void
}

export class ControlLeg {
  /** The peer's bytes not yet taken as lines. */
  readonly lines: LineReader
  readonly #handlers: LegHandlers
  #stream: Duplex
  #writer: LegWriter
  /** The stream the handlers are on, if any. */
  #listening: Duplex | null = null

  constructor(stream: Duplex, lines: LineReader, handlers: LegHandlers) {
    this.#stream = stream
    this.lines = lines
    this.#handlers = handlers
    this.#writer = new LegWriter(stream, handlers.onDrain)
  }

  /** The one writer toward the peer. */
  get writer(): LegWriter {
    return this.#writer
  }

  /**
   * Starts listening to the stream. The session's handlers are registered as they are: no
   * closures of the leg's own per stream (an idle session's memory is mostly such small objects).
   */
  listen(): void {
    this.#detach()
    const stream = this.#stream
    const h = this.#handlers
    stream.on('data', h.onData)
    stream.on('end', h.onEnd)
    stream.on('error', h.onError)
    stream.on('close', h.onClose)
    this.#listening = stream
  }

  #detach(): void {
    const stream = this.#listening
    if (stream === null) return
    const h = this.#handlers
    stream.off('data', h.onData)
    stream.off('end', h.onEnd)
    stream.off('error', h.onError)
    stream.off('close', h.onClose)
    this.#listening = null
  }

  /**
   * Replaces the stream: the session's listeners leave the old one, `make` is given every byte
   * received and not yet taken as a line (the reader is emptied, and so is what the old stream
   * buffered while paused) and returns the new stream, to
   * which the listeners and a new writer are attached. Where those bytes belong is `make`'s
   * call: in front of the new stream's own (a plain swap), or back into the old socket under a
   * TLS socket built on it. Bytes handed to the old writer stay with the old stream: a caller
   * that builds the new stream on the old one swaps once they are flushed.
   */
  swap(make: (unread: Buffer, old: Duplex) => Duplex): void {
    const old = this.#stream
    this.#detach()
    this.#writer.detach()
    old.pause()
    // Whatever happens to the old stream now is the new one's to report; an error on it must
    // not go unhandled.
    old.on('error', () => {})
    // Unread: the reader's bytes, then any the old stream holds that it has not emitted yet.
    const held: Buffer[] = []
    for (let chunk: unknown = old.read(); chunk !== null; chunk = old.read()) held.push(chunk as Buffer)
    const next = make(Buffer.concat([this.lines.takeUnread(), ...held]), old)
    this.#stream = next
    this.#writer = new LegWriter(next, this.#handlers.onDrain)
    this.listen()
  }

  /** Calls `fn` once every byte handed to the writer has left the stream for the kernel. */
  afterFlush(fn: () => void): void {
    const stream = this.#stream
    setImmediate(() => {
      if (stream.writableLength === 0) fn()
      else stream.once('drain', fn)
    })
  }

  pause(): void {
    this.#stream.pause()
  }

  resume(): void {
    this.#stream.resume()
  }

  cork(): void {
    this.#stream.cork()
  }

  uncork(): void {
    this.#stream.uncork()
  }

  destroy(): void {
    this.#stream.destroy()
  }

  /** Ends the leg after what it was handed (and `last`), and closes it once that is flushed. */
  endThenClose(last?: Buffer): void {
    if (!this.#writer.open) return
    const stream = this.#stream
    stream.once('finish', () => stream.destroy())
    this.#writer.end(last)
  }
}
