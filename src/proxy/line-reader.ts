// A peer's bytes into lines, one at a time, as the session takes them: a 64 KiB chunk of
// `LPSV\r\n` from a client, or of bare LFs from a server, waits here as one buffer, not as tens
// of thousands of live lines. Lines are framed on LF and bounded (LineFramer); on the client's
// side an ABOR whose LF was sent as urgent data ends on its bare CR.

import { LineFramer } from '../protocol/line-framer.js'

export class LineReader {
  readonly #framer: LineFramer
  readonly #pending: Buffer[] = []
  /** The last line ended in a bare CR (an ABOR whose LF was urgent data). */
  #afterBareCr = false

  constructor(maxLineBytes: number, acceptBareCr?: (pending: Buffer) => boolean) {
    this.#framer = new LineFramer(acceptBareCr === undefined ? { maxLineBytes } : { maxLineBytes, acceptBareCr })
  }

  /** Whether bytes are waiting (a line, or part of one). */
  get waiting(): boolean {
    return this.#pending.length > 0
  }

  push(chunk: Buffer): void {
    this.#pending.push(chunk)
  }

  /** Drops what is waiting (the session is ending). */
  clear(): void {
    this.#pending.length = 0
  }

  /**
   * Takes every byte received and not yet returned as a line (an unfinished line first), in
   * the order received, leaving the reader empty: what a swapped leg carries over.
   */
  takeUnread(): Buffer {
    const unread = Buffer.concat([this.#framer.takePending(), ...this.#pending])
    this.#pending.length = 0
    return unread
  }

  /** The next complete line, or null. Throws LineTooLongError past the limit. */
  next(): Buffer | null {
    while (this.#pending.length > 0) {
      const chunk = this.#pending[0] as Buffer
      const lf = chunk.indexOf(0x0a)
      const piece = lf === -1 ? chunk : chunk.subarray(0, lf + 1)
      if (lf === -1 || lf + 1 === chunk.length) this.#pending.shift()
      else this.#pending[0] = chunk.subarray(lf + 1)
      // At most one line: the piece holds at most one LF (or ends in the CR of an ABOR).
      const line = this.#framer.push(piece)[0]
      if (line === undefined) continue
      // The LF of an ABOR taken on its bare CR may still come (it was not urgent data after
      // all): it ends nothing, and must not reach the server as an empty command.
      const afterBareCr = this.#afterBareCr
      this.#afterBareCr = line[line.length - 1] === 0x0d
      if (afterBareCr && line.length === 1 && line[0] === 0x0a) continue
      return line
    }
    return null
  }
}
