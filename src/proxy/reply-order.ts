// Replies in the client's order. Every command the client sends gets a slot: the bytes the client
// is owed for it. Server replies fill the slots of forwarded commands in the order they were sent
// (RFC 959: a server answers in order); the proxy's own replies are slots filled at once. The
// slots are handed to the client's writer in order, so a reply the proxy writes itself waits
// behind the replies to earlier commands, and a reply being rewritten holds the ones behind it.
//
// Replies stream through line by line; only those the session must read whole (see `readWhole`)
// are assembled, within maxReplyBytes. No socket or timer here: the session wires it.

import { LineTooLongError } from '../errors.js'
import type { ActiveTarget } from '../protocol/commands.js'
import { lineText } from '../protocol/line-framer.js'
import { replyLineCode } from '../protocol/replies.js'
import type { PassiveForm } from './command-policy.js'
import type { DataLease } from './transfer.js'

/** What the client is owed for one command (or for the server's greeting). */
export type Expect =
  | { readonly type: 'greeting' }
  /** A command passed on; its reply streams through. */
  | { readonly type: 'plain' }
  /**
   * FEAT: its reply streams through without the server's TLS features (AUTH, PBSZ, PROT are
   * the proxy's to offer); with `tls`, the proxy's own are added.
   */
  | { readonly type: 'feat'; readonly tls: boolean }
  /** The server's reply to the AUTH TLS the proxy sent for the client's; `secured` once its TLS is on. */
  | { type: 'auth'; secured: boolean }
  /** A command of the proxy's own (AUTH, PBSZ, PROT toward the server): its reply goes to `onReply`, never to the client. */
  | { readonly type: 'internal'; readonly onReply: (code: number) => void }
  /** PASV, EPSV, or PORT/EPRT made passive toward the server: the client gets `form`. */
  | PassiveRequest
  /** A transfer command on a lease; `preliminary` once the server sent its 1xx. */
  | { readonly type: 'transfer'; readonly lease: DataLease; preliminary: boolean }
  /** A PORT/EPRT the proxy sent the server for --active-mode relay. */
  | { readonly type: 'relayed'; readonly lease: DataLease }
  /** A reply of the proxy's own. */
  | { readonly type: 'local' }
  /** A reply no command asked for (the server's 421 before it leaves, say). */
  | { readonly type: 'unsolicited' }

export interface PassiveRequest {
  readonly type: 'passive'
  readonly verb: string
  readonly form: PassiveForm
  readonly active: ActiveTarget | null
  /** An EPSV already asked again as PASV of a server without EPSV. */
  retried: boolean
}

export interface Slot {
  readonly expect: Expect
  /** Bytes for the client, in order, not yet handed to its writer. */
  readonly out: Buffer[]
  /** No more bytes will be added: the next slot may go once these are out. */
  done: boolean
  /** Called once the slot's last byte has been handed to the client's writer. */
  onSent?: () => void
  /** Called once the slot is done (all its bytes are there, or none will come). */
  onDone?: () => void
}

/** A server reply being read: streamed line by line, or assembled whole (`lines`). */
interface Reading {
  readonly slot: Slot
  readonly code: number
  readonly whole: boolean
  readonly lines: Buffer[]
  bytes: number
  readonly multiLine: boolean
}

export interface ReplyOrderOptions {
  /** A reply read whole longer than this is an error (LineTooLongError). */
  readonly maxReplyBytes: number
  /** A reply is complete: the session decides what the client gets for it. */
  readonly onReply: (slot: Slot, code: number, lines: readonly Buffer[]) => void
  /** Bytes became ready after some asynchronous work (#later). */
  readonly onReady: () => void
  readonly onError: (err: unknown) => void
}

/** Where the client's writer stands: whether it takes more now, and how to hand it bytes. */
export interface Sink {
  readonly backedUp: boolean
  write(bytes: Buffer): void
}

// What one queued buffer costs beyond its bytes (the Buffer object, its place in the array): a
// peer sending empty lines must not hold 100 bytes of heap for every byte counted.
const ENTRY_COST = 96

// RFC 2389 feature lines start with a space; RFC 4217's are AUTH, PBSZ and PROT.
const TLS_FEATURE = /^\s+(AUTH|PBSZ|PROT)(\s|$)/i
const UNSOLICITED: Expect = Object.freeze({ type: 'unsolicited' })

export class ReplyOrder {
  readonly #opts: ReplyOrderOptions
  /** Every slot not yet handed to the client's writer, in the client's order. */
  readonly #slots: Slot[] = []
  /** Slots of forwarded commands still waiting for their final reply, in the order sent. */
  readonly #awaiting: Slot[] = []
  /** Bytes in the slots' `out` queues. */
  #held = 0
  #reading: Reading | null = null
  /** The asynchronous reply work (#later), one at a time. */
  #serial: Promise<void> = Promise.resolve()
  #closed = false

  constructor(opts: ReplyOrderOptions) {
    this.#opts = opts
  }

  /** Slots not yet handed to the client: commands not answered yet, the proxy's own included. */
  get pending(): number {
    return this.#slots.length
  }

  /**
   * What the replies hold in memory: bytes (and a cost per buffer) waiting for the client, and
   * replies read whole whose answer is being worked out.
   */
  get held(): number {
    return this.#held
  }

  /** Whether the next slot to go to the client waits for the server: reading it is the only way on. */
  get headAwaitsServer(): boolean {
    const head = this.#slots[0]
    return head !== undefined && this.#awaiting.includes(head)
  }

  /** Resolves once the asynchronous reply work queued so far has ended. */
  settled(): Promise<void> {
    return this.#serial
  }

  /** A slot whose reply will come from the server (a command forwarded, the greeting). */
  awaitReply(expect: Expect): Slot {
    const slot = this.#slot(expect)
    this.#awaiting.push(slot)
    return slot
  }

  /** Waits for one more reply for a slot that was answered (an EPSV asked again as PASV). */
  awaitAgain(slot: Slot): void {
    this.#awaiting.push(slot)
  }

  /** A reply of the proxy's own, behind the replies to every earlier command. */
  own(expect: Expect, bytes: Buffer): Slot {
    const slot = this.#slot(expect)
    this.finish(slot, [bytes])
    return slot
  }

  /** Adds bytes for the client to a slot. */
  pass(slot: Slot, bytes: readonly Buffer[]): void {
    for (const b of bytes) {
      slot.out.push(b)
      this.#held += b.length + ENTRY_COST
    }
  }

  /** The slot's bytes are all there: the next slot may go once they are out. */
  finish(slot: Slot, bytes: readonly Buffer[] = []): void {
    this.pass(slot, bytes)
    this.#done(slot)
  }

  #done(slot: Slot): void {
    if (slot.done) return
    slot.done = true
    slot.onDone?.()
  }

  /**
   * A slot whose bytes come later (a rewrite, a held 226): the slots behind it wait. These run
   * one after another, in the order the replies came, so a passive reply replaces the lease of
   * the one before it only once that one exists, and pool ports are taken in order.
   */
  later(slot: Slot, work: () => Promise<readonly Buffer[]>, holds: readonly Buffer[]): void {
    // The reply the work reads stays in memory until it ends: counted, so that a server sending
    // passive reply after passive reply is not read faster than they are worked out.
    const cost = holds.reduce((n, b) => n + b.length + ENTRY_COST, 0)
    this.#held += cost
    this.#serial = this.#serial.then(work).then(
      (out) => {
        if (this.#closed) return
        this.#held -= cost
        this.finish(slot, out)
        this.#opts.onReady()
      },
      (err: unknown) => this.#opts.onError(err),
    )
  }

  /**
   * One line from the server. RFC 959 4.2: a multi-line reply starts with `ddd-` and ends on a
   * line that starts with the same code and a space; the lines between may say anything.
   * Throws LineTooLongError when a reply read whole grows over the limit.
   */
  serverLine(line: Buffer): void {
    const text = lineText(line)
    let r = this.#reading
    let last: boolean
    if (r === null) {
      const start = replyLineCode(text)
      if (start === null) {
        // A line outside any reply: passed on where it stands, joined to the unsolicited
        // bytes before it if nothing came between (one slot, not one per line).
        const tail = this.#slots[this.#slots.length - 1]
        const slot = this.#awaiting[0] ?? (tail?.expect.type === 'unsolicited' ? tail : this.#slot(UNSOLICITED))
        this.pass(slot, [line])
        if (slot.expect.type === 'unsolicited') this.#done(slot)
        return
      }
      const slot = this.#awaiting[0] ?? this.#slot(UNSOLICITED)
      r = { slot, code: start.code, whole: readWhole(slot.expect, start.code), lines: [], bytes: 0, multiLine: start.opens }
      last = !start.opens
      if (!last) this.#reading = r
    } else {
      const end = replyLineCode(text)
      last = end !== null && end.code === r.code && !end.opens
      if (last) this.#reading = null
    }
    if (r.whole) {
      r.bytes += line.length
      if (r.bytes > this.#opts.maxReplyBytes) throw new LineTooLongError(this.#opts.maxReplyBytes)
      r.lines.push(line)
    } else if (r.slot.expect.type !== 'feat') {
      this.pass(r.slot, [line])
    } else if (!TLS_FEATURE.test(text)) {
      this.pass(r.slot, last && r.slot.expect.tls && r.code === 211 ? withTlsFeatures(line, r.multiLine) : [line])
    }
    if (!last) return
    // RFC 959 4.2: 1yz replies are preliminary; the command is answered by the next final one.
    if (r.code >= 200 && r.slot === this.#awaiting[0]) this.#awaiting.shift()
    this.#opts.onReply(r.slot, r.code, r.lines)
  }

  /**
   * The server will answer nothing more: the first slot still waiting for it is complete as it
   * is, and nothing behind it goes to the client. A client pairs replies with commands by order:
   * a reply of the proxy's own to a later command would be taken as the answer to that one.
   */
  serverGone(): void {
    this.#reading = null
    // The earliest in the client's order (an EPSV asked again as PASV waits at the end of
    // #awaiting but stands where the client sent it).
    let at = this.#slots.length
    for (const slot of this.#awaiting) {
      this.#done(slot)
      const i = this.#slots.indexOf(slot)
      if (i !== -1) at = Math.min(at, i)
    }
    this.#awaiting.length = 0
    for (const dropped of this.#slots.splice(at + 1)) for (const b of dropped.out) this.#held -= b.length + ENTRY_COST
  }

  /** Drops everything not yet handed to the client (a final reply of the proxy's goes next). */
  clear(): void {
    this.#slots.length = 0
    this.#awaiting.length = 0
    this.#held = 0
    this.#reading = null
  }

  /** The session is closed: asynchronous work that ends later is dropped. */
  close(): void {
    this.clear()
    this.#closed = true
  }

  /** Whether any slot is a transfer whose lease has not ended. */
  someTransfer(): boolean {
    return this.#slots.some((s) => s.expect.type === 'transfer' && !s.expect.lease.ended)
  }

  /** Hands the slots' bytes to the client's writer in order, as far as it takes them. */
  writeTo(sink: Sink): void {
    while (this.#slots.length > 0 && !sink.backedUp) {
      const head = this.#slots[0] as Slot
      while (head.out.length > 0 && !sink.backedUp) {
        const bytes = head.out.shift() as Buffer
        this.#held -= bytes.length + ENTRY_COST
        sink.write(bytes)
      }
      if (head.out.length > 0 || !head.done) break
      this.#slots.shift()
      head.onSent?.()
    }
  }

  #slot(expect: Expect): Slot {
    const slot: Slot = { expect, out: [], done: false }
    this.#slots.push(slot)
    return slot
  }
}

/**
 * Whether a reply must be read whole before the client gets it: a passive reply (rewritten),
 * any reply to a passive request (it may be retried or replaced), and a transfer's final reply
 * (held until the data has drained). Everything else streams through line by line.
 */
function readWhole(expect: Expect, code: number): boolean {
  if (expect.type === 'internal' || expect.type === 'auth') return true
  if (code === 227 || code === 229) return true
  if (expect.type === 'passive') return true
  return expect.type === 'transfer' && code >= 200
}

// RFC 4217 6: the features a client looks for before AUTH TLS.
const TLS_FEATURES = Buffer.from(' AUTH TLS\r\n PBSZ\r\n PROT\r\n')

/** The last line of a 211 FEAT reply with the proxy's TLS features before it (a one-line 211 made multi-line). */
function withTlsFeatures(last: Buffer, multiLine: boolean): Buffer[] {
  if (multiLine) return [TLS_FEATURES, last]
  return [Buffer.from('211-Features:\r\n'), TLS_FEATURES, Buffer.from('211 End\r\n')]
}
