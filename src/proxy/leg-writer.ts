// The one writer of a control leg (STYLE.md 14, after undici's AsyncWriter): every byte toward
// that peer, relayed or the proxy's own, goes through it in order, and it says when the peer
// stopped reading so that the session stops reading whatever would produce more bytes for it.

import type { Duplex } from 'node:stream'

export class LegWriter {
  readonly #stream: Duplex
  readonly #onDrain: () => void
  #backedUp = false

  /** `onDrain` is called when a backed-up leg takes bytes again. */
  constructor(stream: Duplex, onDrain: () => void) {
    this.#stream = stream
    this.#onDrain = () => {
      this.#backedUp = false
      onDrain()
    }
    stream.on('drain', this.#onDrain)
  }

  /** Stops reporting drains (the leg's stream was replaced). */
  detach(): void {
    this.#stream.off('drain', this.#onDrain)
  }

  /** The peer has not taken what was written: write nothing more that can wait. */
  get backedUp(): boolean {
    return this.#backedUp
  }

  /** Whether the leg can still carry bytes. */
  get open(): boolean {
    return !this.#stream.destroyed && !this.#stream.writableEnded
  }

  write(bytes: Buffer): void {
    if (!this.open) return
    if (!this.#stream.write(bytes)) this.#backedUp = true
  }

  /** Ends the leg after what was written (and `last`, if given). */
  end(last?: Buffer): void {
    if (!this.open) return
    if (last === undefined) this.#stream.end()
    else this.#stream.end(last)
  }
}
