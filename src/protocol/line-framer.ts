// Bytes in, lines out. Pure: no sockets, no timers (STYLE.md 1, 2).
//
// A line is kept as the exact bytes received, terminator included, so that a line the proxy
// does not rewrite is forwarded byte for byte (file names may be in any encoding, Telnet IAC
// bytes pass through). The buffer is capped: a peer that never sends LF gets an error, not
// unbounded memory (basic-ftp's maxControlResponseLength, undici's headersMaxSize).

import { LineTooLongError } from '../errors.js'

const LF = 0x0a
const CR = 0x0d

export interface LineFramerOptions {
  /** Longest line accepted, terminator included, in bytes. */
  readonly maxLineBytes: number
  /**
   * Called with the pending bytes when they end in a bare CR and no LF follows in the chunk.
   * Returning true emits them as a complete line. This is how a command whose final LF was
   * sent as TCP urgent data (and dropped by Linux) still ends: python ftplib's `ABOR\r`.
   */
  readonly acceptBareCr?: (pending: Buffer) => boolean
}

export class LineFramer {
  readonly #max: number
  readonly #acceptBareCr: ((pending: Buffer) => boolean) | undefined
  #parts: Buffer[] = []
  #pendingBytes = 0

  constructor(options: LineFramerOptions) {
    this.#max = options.maxLineBytes
    this.#acceptBareCr = options.acceptBareCr
  }

  /** Bytes held that do not form a complete line yet. */
  get pendingBytes(): number {
    return this.#pendingBytes
  }

  /** Takes the bytes of the unfinished line, leaving the framer empty. */
  takePending(): Buffer {
    const pending = Buffer.concat(this.#parts)
    this.#parts = []
    this.#pendingBytes = 0
    return pending
  }

  /**
   * Feeds a chunk; returns the complete lines it finishes, in order.
   * Throws LineTooLongError once a line exceeds the limit, carrying the complete lines framed
   * before it; the framer is then unusable.
   */
  push(chunk: Buffer): Buffer[] {
    const lines: Buffer[] = []
    let start = 0
    for (;;) {
      const lf = chunk.indexOf(LF, start)
      if (lf === -1) break
      const piece = chunk.subarray(start, lf + 1)
      this.#check(this.#pendingBytes + piece.length, lines)
      lines.push(this.#take(piece))
      start = lf + 1
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start)
      this.#check(this.#pendingBytes + rest.length, lines)
      // Copy: the caller's chunk may be reused, and a slice would pin the whole chunk.
      this.#parts.push(Buffer.from(rest))
      this.#pendingBytes += rest.length
      if (this.#acceptBareCr !== undefined && rest[rest.length - 1] === CR) {
        const pending = Buffer.concat(this.#parts)
        if (this.#acceptBareCr(pending)) {
          this.#parts = []
          this.#pendingBytes = 0
          lines.push(pending)
        }
      }
    }
    return lines
  }

  // The lines already framed travel with the error, so how TCP split the bytes never decides
  // whether a good line before the long one is handled.
  #check(length: number, lines: Buffer[]): void {
    if (length > this.#max) throw new LineTooLongError(this.#max, lines)
  }

  #take(piece: Buffer): Buffer {
    if (this.#parts.length === 0) return piece
    const line = Buffer.concat([...this.#parts, piece])
    this.#parts = []
    this.#pendingBytes = 0
    return line
  }
}

/** The line without its terminator (LF, CRLF, or a bare CR), decoded as latin1 for matching. */
export function lineText(line: Buffer): string {
  let end = line.length
  if (end > 0 && line[end - 1] === LF) end--
  if (end > 0 && line[end - 1] === CR) end--
  return line.toString('latin1', 0, end)
}
