// One client <-> server control session: relays commands and replies, rewrites passive replies,
// and owns the session's data leases. Built over plain Duplex streams so that both sides can be
// swapped for TLS sockets after AUTH TLS.
//
// Its shape (what the hostile-peer review taught, DESIGN.md):
// - Every command the client sends gets a slot, in order: the bytes the client is owed for it.
//   Server replies fill the slots of forwarded commands in the order they were sent; the proxy's
//   own replies are slots filled at once. The client's writer empties the slots in order, so a
//   reply the proxy writes itself waits behind the replies to earlier commands, and nothing
//   toward the client bypasses the one writer.
// - Replies stream through line by line; only those the proxy must read whole (227/229, the
//   replies to a passive request, a transfer's final reply) are assembled, within a bound.
// - Flow control in one place (#flow): the client is read only while commands can be taken
//   (few unanswered, both writers flowing), the server only while the client reads its replies.
// - One teardown: a final reply, then the client leg is destroyed after --close-timeout
//   whether or not it reads or closes; no exception from a peer's bytes leaves a handler.

import type { Duplex } from 'node:stream'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import type { Config } from '../config-types.js'
import { addressClass, dataTargets, isIPv4, policyRefusal } from '../net/address-policy.js'
import type { PortLease, PortPool } from '../net/port-pool.js'
import type { ProxyMetrics } from '../observe/metrics.js'
import type { CommandRefusal, FailureReason, LeaseOutcome } from './outcomes.js'
import {
  isAborWithoutLf,
  logSafe,
  parseCommand,
  transferDirection,
  type ActiveTarget,
  type Command,
} from '../protocol/commands.js'
import { LineFramer, lineText } from '../protocol/line-framer.js'
import { format227, format229, parsePassiveReply, replyLineCode } from '../protocol/replies.js'
import { DialError, LineTooLongError, ProxyError } from '../errors.js'
import { connectTo, dialFirst } from '../net/dial.js'
import { DataLease, type DataLeaseOptions } from './data-relay.js'
import { decideCommand } from './command-policy.js'
import { hintFor } from './hints.js'
import { LegWriter } from './leg-writer.js'

/** Bounds on what one session holds; injectable so that tests reach every overflow path. */
export interface SessionLimits {
  /** A reply the proxy reads whole (227/229, a transfer's final reply) longer than this ends the session. */
  readonly maxReplyBytes: number
  /** Commands not yet answered to the client, the proxy's own replies included; past this the client is not read. */
  readonly maxPendingCommands: number
  /** Reply bytes held back for the client (behind a reply being rewritten); past this the server is not read. */
  readonly maxHeldReplyBytes: number
  /** Longest control line, either way; --max-line-length when absent (its floor is 512). */
  readonly maxLineBytes?: number
  /**
   * Commands in a row the proxy refused itself (LPSV, a bounce PORT, AUTH...) before it closes
   * the session: no client needs more, and a flood of them costs the proxy work and memory.
   */
  readonly maxRefusedInRow: number
}

export const DEFAULT_LIMITS: SessionLimits = Object.freeze({
  maxReplyBytes: 64 * 1024,
  maxPendingCommands: 64,
  maxHeldReplyBytes: 256 * 1024,
  maxRefusedInRow: 100,
})

/** What the proxy shares with every session. */
export interface SessionContext {
  readonly config: () => Config
  readonly pool: PortPool
  readonly metrics: ProxyMetrics
  /** Per upstream: the data address that answered last (tried first next time). */
  readonly dataMemory: { lastAnswered: string | null }
  readonly nextLeaseId: () => number
  /** Leases held now per client key (--max-leases-per-client), shared by every session. */
  readonly clientLeases: Map<string, number>
  /** The proxy host's own addresses, never dialled for data by default. */
  readonly ownAddresses: () => ReadonlySet<string>
  readonly limits?: SessionLimits
}

/** The addresses of one session, normalised (no `::ffff:` prefix). */
export interface SessionEndpoints {
  readonly clientAddress: string
  /** What the client counts under for per-client limits (IPv6 grouped by --client-ipv6-prefix). */
  readonly clientKey: string
  readonly clientPort: number
  /** The local address the client dialled: advertised by default, and where pool ports bind. */
  readonly localAddress: string
  /** The server's address as the proxy reached it (the control peer). */
  readonly upstreamAddress: string
  readonly upstreamPort: number
  /** The local address of the upstream control socket: data connections are dialled from it. */
  readonly upstreamLocalAddress: string
  readonly upstreamFamily: 4 | 6
  readonly upstreamLocalPort: number
}

/** What the client is owed for one command (or for the server's greeting). */
type Expect =
  | { readonly type: 'greeting' }
  /** A command passed on; its reply streams through. */
  | { readonly type: 'plain' }
  /** FEAT: its reply streams through without the features the proxy does not carry (TLS). */
  | { readonly type: 'feat' }
  /** PASV, EPSV, or PORT/EPRT made passive toward the server: the client gets `form`. */
  | {
      readonly type: 'passive'
      readonly verb: string
      readonly form: 227 | 229 | 'active'
      readonly active: ActiveTarget | null
      retried: boolean
    }
  /** A transfer command on a lease; `preliminary` once the server sent its 1xx. */
  | { readonly type: 'transfer'; readonly lease: DataLease; preliminary: boolean }
  /** A PORT/EPRT the proxy sent the server for --active-mode relay. */
  | { readonly type: 'relayed'; readonly lease: DataLease }
  /** A reply of the proxy's own. */
  | { readonly type: 'local' }
  /** A reply no command asked for (the server's 421 before it leaves, say). */
  | { readonly type: 'unsolicited' }

interface Slot {
  readonly expect: Expect
  /** Bytes for the client, in order, not yet handed to its writer. */
  readonly out: Buffer[]
  /** No more bytes will be added: the next slot may go once these are out. */
  done: boolean
  /** Called once the slot's last byte has been handed to the client's writer. */
  onSent?: () => void
}

/** A server reply being read: streamed line by line, or assembled whole (`lines`). */
interface Reading {
  readonly slot: Slot
  readonly code: number
  readonly whole: boolean
  readonly lines: Buffer[]
  bytes: number
}

type State = 'open' | 'ending' | 'closed'

// RFC 2389 feature lines start with a space; RFC 4217's are AUTH, PBSZ and PROT.
const TLS_FEATURE = /^\s+(AUTH|PBSZ|PROT)(\s|$)/i

export class ControlSession {
  readonly id: string
  readonly #client: Duplex
  readonly #upstream: Duplex
  readonly #toClient: LegWriter
  readonly #toServer: LegWriter
  readonly #ep: SessionEndpoints
  readonly #ctx: SessionContext
  readonly #limits: SessionLimits
  readonly #log: Logger
  readonly #clientFramer: LineFramer
  readonly #upstreamFramer: LineFramer
  /** Every slot not yet handed to the client's writer, in the client's order. */
  readonly #slots: Slot[] = []
  /** Slots of forwarded commands still waiting for their final reply, in the order sent. */
  readonly #awaiting: Slot[] = []
  /** Bytes in the slots' `out` queues. */
  #held = 0
  #reading: Reading | null = null
  /** The asynchronous reply work (#later), one at a time. */
  #serial: Promise<void> = Promise.resolve()
  /**
   * Client bytes read but not yet framed into commands. Lines are framed one at a time, as
   * commands are taken: a 64 KiB chunk of `LPSV\r\n` is one buffer here, not 10,922 live lines.
   */
  readonly #clientIn: Buffer[] = []
  #commandBusy = false
  readonly #leases = new Set<DataLease>()
  /** Finished transfers whose client leg still carries their last bytes (see DataLease.lingering). */
  #lingering = 0
  /** Leases held, and being set up, by this session (--max-leases-per-session). */
  #leaseCount = 0
  #current: DataLease | null = null
  #epsvAll = false
  #serverNoEpsv = false
  #user: string | undefined
  #quit = false
  #greeted = false
  #clientEnded = false
  /** The server will answer nothing more: once the slots are out, the client leg ends. */
  #serverGone = false
  #state: State = 'open'
  #closeReason: string | null = null
  #closedLegs = 0
  #idleTimer: NodeJS.Timeout | null = null
  #activeAt = performance.now()
  #greetTimer: NodeJS.Timeout | null = null
  #deadline: NodeJS.Timeout | null = null
  /** Refusal reasons already logged at info in this session: the rest go to debug. */
  readonly #refusalsLogged = new Set<CommandRefusal>()
  #refusedInRow = 0
  readonly #openedAt = performance.now()
  readonly #done: Promise<void>
  #resolveDone!: () => void

  constructor(id: string, client: Duplex, upstream: Duplex, ep: SessionEndpoints, ctx: SessionContext, log: Logger) {
    this.id = id
    this.#client = client
    this.#upstream = upstream
    this.#ep = ep
    this.#ctx = ctx
    this.#limits = ctx.limits ?? DEFAULT_LIMITS
    this.#log = log
    this.#toClient = new LegWriter(client, () => this.#guard(() => this.#pump()))
    this.#toServer = new LegWriter(upstream, () => this.#guard(() => this.#pump()))
    const maxLineBytes = this.#limits.maxLineBytes ?? ctx.config().maxLineBytes
    this.#clientFramer = new LineFramer({ maxLineBytes, acceptBareCr: isAborWithoutLf })
    this.#upstreamFramer = new LineFramer({ maxLineBytes })
    this.#done = new Promise((resolve) => {
      this.#resolveDone = resolve
    })
  }

  /** Resolves when both control legs have closed and every lease has ended. */
  get done(): Promise<void> {
    return this.#done
  }

  /** Whether a data transfer is running (a lease in use, or a transfer awaiting its reply). */
  get transferActive(): boolean {
    if (this.#lingering > 0) return true
    for (const lease of this.#leases) if (lease.claimed) return true
    return this.#slots.some((s) => s.expect.type === 'transfer' && !s.expect.lease.ended)
  }

  start(): void {
    const client = this.#client
    const upstream = this.#upstream
    client.on('data', (chunk: Buffer) => this.#guard(() => this.#onClientData(chunk)))
    upstream.on('data', (chunk: Buffer) => this.#guard(() => this.#onUpstreamData(chunk)))
    // A FIN from the client is passed on; the server's last replies still reach the client.
    client.on('end', () => {
      this.#clientEnded = true
      this.#toServer.end()
    })
    upstream.on('end', () => this.#guard(() => this.#onServerLeft()))
    client.on('error', (err) => this.#onError('client', err))
    upstream.on('error', (err) => this.#onError('upstream', err))
    client.on('close', () => this.#onLegClosed('client'))
    upstream.on('close', () => this.#onLegClosed('upstream'))
    // RFC 959 5.4: the greeting (120 then 220, or 421) answers no command, and comes first.
    this.#awaiting.push(this.#slot({ type: 'greeting' }))
    this.#armIdle()
    const greetMs = this.#ctx.config().greetingTimeoutMs
    this.#greetTimer = setTimeout(() => {
      if (this.#greeted) return
      this.#log.warn({ greetingTimeoutSeconds: greetMs / 1000 }, 'the FTP server accepted the connection but sent no greeting; closing')
      this.closeWith(`421 Service not available: the FTP server sent no greeting within ${greetMs / 1000} s.\r\n`, 'no greeting')
    }, greetMs)
    this.#greetTimer.unref()
    this.#log.info(
      {
        clientPort: this.#ep.clientPort,
        upstream: `${this.#ep.upstreamAddress}:${this.#ep.upstreamPort}`,
        upstreamLocalPort: this.#ep.upstreamLocalPort,
      },
      'session opened',
    )
  }

  /** Closes the session now: both legs and every lease. Safe to call twice. */
  close(reason: string): void {
    if (this.#state === 'closed') return
    this.#closeReason ??= reason
    this.#client.destroy()
    this.#upstream.destroy()
  }

  /**
   * Sends the client a final reply, then closes the session (idle timeout, shutdown, bad input):
   * the server leg at once, the client leg once it has the reply or --close-timeout later,
   * whichever comes first. Safe to call twice; the first reason stands.
   */
  closeWith(reply: string, reason: string): void {
    if (this.#state !== 'open') return
    this.#closeReason ??= reason
    this.#beginEnding()
    this.#serverGone = true
    // Replies still owed will not come: the final reply goes behind what the client already has.
    this.#slots.length = 0
    this.#awaiting.length = 0
    this.#held = 0
    this.#reading = null
    this.#upstream.destroy()
    this.#endClient(Buffer.from(reply))
    this.#flow()
  }

  // ---- client -> server -------------------------------------------------------------------

  #onClientData(chunk: Buffer): void {
    // Once the session is ending (server gone, or a final reply sent), client bytes are dropped.
    if (this.#state !== 'open') return
    this.#clientIn.push(chunk)
    this.#pump()
  }

  /** The next complete command line of what the client sent, or null. */
  #nextCommandLine(): Buffer | null {
    while (this.#clientIn.length > 0) {
      const chunk = this.#clientIn[0] as Buffer
      const lf = chunk.indexOf(0x0a)
      const piece = lf === -1 ? chunk : chunk.subarray(0, lf + 1)
      if (lf === -1 || lf + 1 === chunk.length) this.#clientIn.shift()
      else this.#clientIn[0] = chunk.subarray(lf + 1)
      let line: Buffer | undefined
      try {
        // At most one line: the piece holds at most one LF (or ends in the CR of an ABOR).
        line = this.#clientFramer.push(piece)[0]
      } catch (err) {
        if (!(err instanceof LineTooLongError)) throw err
        this.#log.warn({ limit: err.limit }, 'client sent a command line over the limit; closing')
        this.closeWith(`500 Command line too long (limit ${err.limit} bytes).\r\n`, 'client line too long')
        return null
      }
      if (line !== undefined) return line
    }
    return null
  }

  /** Whether another command can be handled now without buffering more than the limits allow. */
  #canTakeCommand(): boolean {
    return (
      this.#state === 'open' &&
      !this.#commandBusy &&
      this.#slots.length < this.#limits.maxPendingCommands &&
      !this.#toClient.backedUp &&
      !this.#toServer.backedUp
    )
  }

  // Commands are handled one at a time, in order; one whose setup is asynchronous (a relayed
  // PORT needs a pool port first) holds the ones behind it, and the client leg is not read.
  #takeCommands(): void {
    while (this.#clientIn.length > 0 && this.#canTakeCommand()) {
      const line = this.#nextCommandLine()
      if (line === null) break
      const done = this.#onCommand(line)
      if (done instanceof Promise) {
        this.#commandBusy = true
        done
          .catch((err: unknown) => this.#internalError(err))
          .finally(() => {
            this.#commandBusy = false
            this.#guard(() => this.#pump())
          })
      }
    }
  }

  #onCommand(line: Buffer): void | Promise<void> {
    const command = parseCommand(line)
    this.#armIdle()
    if (this.#log.isLevelEnabled('debug')) this.#log.debug({ cmd: logSafe(command) }, 'command')
    const { action, set } = decideCommand(
      {
        ending: this.#state !== 'open',
        epsvAll: this.#epsvAll,
        serverWithoutEpsv: this.#serverNoEpsv,
        leasePending: this.#current !== null && !this.#current.ended,
        activeMode: this.#ctx.config().activeMode,
        clientAddress: this.#ep.clientAddress,
        serverFamily: this.#ep.upstreamFamily,
      },
      command,
    )
    if (set?.user !== undefined) this.#user = set.user
    if (set?.quit === true) this.#quit = true
    if (set?.epsvAll === true) this.#epsvAll = true
    switch (action.type) {
      case 'drop':
        return
      case 'forward':
        return this.#forward(action.reply === 'feat' ? FEAT : PLAIN, line)
      case 'transfer': {
        const lease = this.#current as DataLease
        lease.attach(command)
        this.#current = null
        return this.#forward({ type: 'transfer', lease, preliminary: false }, line)
      }
      case 'abort':
        for (const lease of [...this.#leases]) lease.cancel('aborted')
        return this.#forward(PLAIN, Buffer.from(action.send))
      case 'passive':
        return this.#forward(
          { type: 'passive', verb: command.verb, form: action.form, active: action.active, retried: false },
          action.send === null ? line : Buffer.from(action.send),
        )
      case 'relay':
        return this.#relayActive(command, action.active)
      case 'reply':
        return this.#local(action.text)
      case 'refuse':
        return this.#refuse(command, action.reason, action.text)
    }
  }

  /**
   * `--active-mode relay`: a pool port on the server-facing side, the server told to connect to
   * it with PORT/EPRT naming the proxy, and the client dialled once the server has connected.
   */
  async #relayActive(command: Command, target: ActiveTarget): Promise<void> {
    const config = this.#ctx.config()
    if (this.#current !== null && !this.#current.claimed) this.#current.cancel('replaced')
    const limited = this.#takeLeaseSlot()
    if (limited !== null) {
      this.#failed('lease_limit', {})
      return this.#local(`425 Can't open data connection: ${limited}.`)
    }
    let portLease: PortLease
    try {
      portLease = await this.#ctx.pool.lease(this.#ep.upstreamLocalAddress)
    } catch (err) {
      this.#giveLeaseSlot()
      if (!(err instanceof ProxyError && err.code === 'POOL_EXHAUSTED')) throw err
      this.#failed('pool_exhausted', {})
      return this.#local("425 Can't open data connection: every port of the proxy's pool is in use.")
    }
    if (this.#isClosed()) {
      this.#giveLeaseSlot()
      return portLease.release()
    }
    const lease = this.#newLease(portLease, null, {
      serverAddress: this.#ep.upstreamAddress,
      client: { host: target.host, port: target.port, localAddress: this.#ep.localAddress, timeoutMs: config.connectTimeoutMs },
    })
    const own = this.#ep.upstreamLocalAddress
    const toServer =
      this.#ep.upstreamFamily === 4
        ? `PORT ${own.split('.').join(',')},${lease.port >> 8},${lease.port & 255}`
        : `EPRT |2|${own}|${lease.port}|`
    this.#log.info({ lease: lease.id, cmd: logSafe(command), toServer, activeTarget: `${target.host}:${target.port}` }, 'active mode relayed')
    this.#forward({ type: 'relayed', lease }, Buffer.from(`${toServer}\r\n`))
  }

  #slot(expect: Expect): Slot {
    const slot: Slot = { expect, out: [], done: false }
    this.#slots.push(slot)
    return slot
  }

  #forward(expect: Expect, bytes: Buffer): void {
    this.#refusedInRow = 0
    this.#awaiting.push(this.#slot(expect))
    this.#toServer.write(bytes)
  }

  /** Answers a command without the server, counted by reason. */
  #refuse(command: Command, reason: CommandRefusal, text: string): void {
    this.#ctx.metrics.commandsRefused.inc({ reason })
    // The first refusal of a kind is worth a line; a client repeating it must not set the log volume.
    const level = this.#refusalsLogged.has(reason) ? 'debug' : 'info'
    this.#refusalsLogged.add(reason)
    if (this.#log.isLevelEnabled(level)) this.#log[level]({ cmd: logSafe(command), reason, reply: text }, 'command refused')
    this.#local(text)
    if (++this.#refusedInRow >= this.#limits.maxRefusedInRow) {
      this.#log.warn({ refused: this.#refusedInRow }, 'client sent only commands the proxy refuses; closing')
      this.closeWith(`421 Too many refused commands (${this.#refusedInRow} in a row); closing.\r\n`, 'too many refused commands')
    }
  }

  /** A reply of the proxy's own, behind the replies to every earlier command. */
  #local(text: string): void {
    const slot = this.#slot(LOCAL)
    this.#emit(slot, replyBytes(text))
    slot.done = true
  }

  // ---- server -> client -------------------------------------------------------------------

  #onUpstreamData(chunk: Buffer): void {
    if (this.#state === 'closed' || this.#serverGone) return
    let lines: readonly Buffer[]
    let tooLong: LineTooLongError | null = null
    try {
      lines = this.#upstreamFramer.push(chunk)
    } catch (err) {
      if (!(err instanceof LineTooLongError)) throw err
      lines = err.linesBefore
      tooLong = err
    }
    try {
      for (const line of lines) this.#onServerLine(line)
    } catch (err) {
      if (!(err instanceof LineTooLongError)) throw err
      tooLong = err
    }
    if (tooLong !== null && !this.#serverGone) {
      this.#log.warn({ limit: tooLong.limit }, 'server sent a reply over the limit; closing')
      this.#closeReason ??= 'server reply too long'
      this.#upstream.destroy()
      this.#onServerGone(`421 The FTP server sent a reply longer than ${tooLong.limit} bytes; closing.\r\n`)
    }
    this.#pump()
  }

  /**
   * One line from the server. RFC 959 4.2: a multi-line reply starts with `ddd-` and ends on a
   * line that starts with the same code and a space; the lines between may say anything.
   * Throws LineTooLongError when a reply read whole grows over the limit.
   */
  #onServerLine(line: Buffer): void {
    if (this.#serverGone) return
    const text = lineText(line)
    let r = this.#reading
    let last: boolean
    if (r === null) {
      const start = replyLineCode(text)
      const slot = this.#awaiting[0] ?? this.#unsolicited()
      if (start === null) {
        // A line outside any reply: passed on where it stands.
        this.#emit(slot, line)
        if (slot.expect.type === 'unsolicited') slot.done = true
        return
      }
      r = { slot, code: start.code, whole: readWhole(slot.expect, start.code), lines: [], bytes: 0 }
      last = !start.opens
      if (!last) this.#reading = r
    } else {
      const end = replyLineCode(text)
      last = end !== null && end.code === r.code && !end.opens
      if (last) this.#reading = null
    }
    if (r.whole) {
      r.bytes += line.length
      if (r.bytes > this.#limits.maxReplyBytes) throw new LineTooLongError(this.#limits.maxReplyBytes)
      r.lines.push(line)
    } else if (!(r.slot.expect.type === 'feat' && TLS_FEATURE.test(text))) {
      this.#emit(r.slot, line)
    }
    if (last) this.#onReply(r.slot, r.code, r.lines)
  }

  /** A reply is complete: what the client gets for it, by the command it answers. */
  #onReply(slot: Slot, code: number, lines: readonly Buffer[]): void {
    const e = slot.expect
    this.#log.trace({ code }, 'reply')
    if (code < 200 && e.type !== 'unsolicited') {
      // RFC 959 4.2: 1yz replies are preliminary; the command is answered by the next final one.
      if (e.type === 'transfer') e.preliminary = true
      this.#emitAll(slot, lines)
      return
    }
    if (slot === this.#awaiting[0]) this.#awaiting.shift()
    if (e.type === 'greeting') this.#greeted = true
    if (code === 227 || code === 229) {
      this.#later(slot, () => this.#rewritePassive(lines, code, e.type === 'passive' ? e : null))
      return
    }
    if (e.type === 'passive' && e.form === 229 && !e.retried && (code === 500 || code === 502)) {
      // A server without EPSV (500: not understood, 502: not implemented): ask it with PASV and
      // answer the client's EPSV with a 229 all the same. Other refusals (530, 550) pass on.
      this.#serverNoEpsv = true
      e.retried = true
      this.#log.info({ code }, 'server refused EPSV; asking with PASV')
      this.#awaiting.push(slot)
      this.#toServer.write(Buffer.from('PASV\r\n'))
      return
    }
    if (e.type === 'passive' && e.form === 'active' && code >= 400) {
      // The server refused the passive request made for the client's PORT/EPRT.
      this.#emit(slot, Buffer.from(`425 Can't open data connection: the FTP server refused passive mode (${code}).\r\n`))
    } else if (e.type === 'transfer' && code < 300) {
      e.lease.transferSucceeded()
      slot.onSent = () => e.lease.replyPassed()
      this.#later(slot, () => this.#afterDrain(e.lease, lines))
      return
    } else {
      if (e.type === 'relayed' && code >= 400) e.lease.cancel('refused')
      if (e.type === 'transfer') {
        // The server refused the transfer command, or reported a failed transfer.
        if (e.preliminary) e.lease.fail('reset')
        else e.lease.cancel('refused')
      }
      this.#emitAll(slot, lines)
    }
    slot.done = true
  }

  #unsolicited(): Slot {
    return this.#slot({ type: 'unsolicited' })
  }

  #emit(slot: Slot, bytes: Buffer): void {
    slot.out.push(bytes)
    this.#held += bytes.length
  }

  #emitAll(slot: Slot, lines: readonly Buffer[]): void {
    for (const line of lines) this.#emit(slot, line)
  }

  /**
   * A slot whose bytes come later (a rewrite, a held 226): the slots behind it wait. These run
   * one after another, in the order the replies came, so a passive reply replaces the lease of
   * the one before it only once that one exists, and pool ports are taken in order.
   */
  #later(slot: Slot, work: () => Promise<readonly Buffer[]>): void {
    this.#serial = this.#serial.then(work).then(
      (out) => {
        if (this.#state === 'closed') return
        this.#emitAll(slot, out)
        slot.done = true
        this.#guard(() => this.#pump())
      },
      (err: unknown) => this.#internalError(err),
    )
  }

  /**
   * Moves the session on: hands the slots' bytes to the client's writer in order, as far as it
   * takes them, and takes the commands that then fit, until neither can go further.
   */
  #pump(): void {
    // Everything handed to the client in one pass goes out in one write (writev), not one
    // syscall per reply.
    this.#client.cork()
    try {
      this.#pumpCorked()
    } finally {
      this.#client.uncork()
    }
    // The server is gone and its last reply is out: the session ends, whether or not the
    // client closes its side.
    if (this.#serverGone && this.#slots.length === 0) this.#endClient()
    this.#flow()
  }

  #pumpCorked(): void {
    for (;;) {
      while (this.#slots.length > 0 && !this.#toClient.backedUp) {
        const head = this.#slots[0] as Slot
        while (head.out.length > 0 && !this.#toClient.backedUp) {
          const bytes = head.out.shift() as Buffer
          this.#held -= bytes.length
          this.#toClient.write(bytes)
        }
        if (head.out.length > 0 || !head.done) break
        this.#slots.shift()
        head.onSent?.()
      }
      if (this.#clientIn.length === 0 || !this.#canTakeCommand()) break
      this.#takeCommands()
    }
  }

  /**
   * Flow control, in one place: the client is read while commands can be taken (and, once the
   * session is ending, to drop its bytes and see its FIN); the server while the client reads.
   */
  #flow(): void {
    if (this.#state === 'closed') return
    const readClient = this.#state !== 'open' || (this.#clientIn.length === 0 && this.#canTakeCommand())
    if (readClient) this.#client.resume()
    else this.#client.pause()
    const readServer = !this.#toClient.backedUp && this.#held < this.#limits.maxHeldReplyBytes
    if (readServer) this.#upstream.resume()
    else this.#upstream.pause()
  }

  /**
   * The server's 226 is held until the client's leg has been handed every byte: the proxy
   * connected to the server early, so the server can finish before the client has its data.
   */
  async #afterDrain(lease: DataLease, lines: readonly Buffer[]): Promise<readonly Buffer[]> {
    const result = await lease.drained()
    if (result === 'ok') return lines
    if (result === 'not_connected') {
      return [Buffer.from("425 Can't open data connection: the client did not connect to the passive port.\r\n")]
    }
    return [Buffer.from('426 Connection closed; transfer aborted: the data connection to the client failed.\r\n')]
  }

  /** Takes a place for a lease under both caps, or says which cap is full. */
  #takeLeaseSlot(): string | null {
    const config = this.#ctx.config()
    if (this.#leaseCount >= config.maxLeasesPerSession) {
      return `this session already holds ${config.maxLeasesPerSession} data connections (--max-leases-per-session)`
    }
    const key = this.#ep.clientKey
    const held = this.#ctx.clientLeases.get(key) ?? 0
    if (held >= config.maxLeasesPerClient) {
      return `your address already holds ${config.maxLeasesPerClient} data connections (--max-leases-per-client)`
    }
    this.#leaseCount++
    this.#ctx.clientLeases.set(key, held + 1)
    return null
  }

  #giveLeaseSlot(): void {
    this.#leaseCount--
    const key = this.#ep.clientKey
    const n = (this.#ctx.clientLeases.get(key) ?? 1) - 1
    if (n <= 0) this.#ctx.clientLeases.delete(key)
    else this.#ctx.clientLeases.set(key, n)
  }

  /** Counts and logs a data connection that failed before it had a lease. */
  #failed(reason: FailureReason, fields: object): void {
    this.#ctx.metrics.leaseEnded({ result: 'failed', reason })
    this.#log.warn({ reason, hint: hintFor(reason, null, null, this.#ep.upstreamAddress), ...fields }, 'data connection failed')
  }

  #newLease(port: PortLease | null, upstream: Socket | null, relay?: DataLeaseOptions['relay']): DataLease {
    const config = this.#ctx.config()
    const lease = new DataLease({
      id: this.#ctx.nextLeaseId(),
      port,
      upstream,
      ...(relay === undefined ? {} : { relay }),
      clientAddress: this.#ep.clientAddress,
      acceptTimeoutMs: config.dataAcceptTimeoutMs,
      dataIdleTimeoutMs: config.dataIdleTimeoutMs,
      closeTimeoutMs: config.closeTimeoutMs,
      metrics: this.#ctx.metrics,
      log: this.#log,
      onEnd: (l, outcome) => this.#onLeaseEnd(l, outcome),
    })
    this.#leases.add(lease)
    this.#current = lease
    return lease
  }

  async #rewritePassive(lines: readonly Buffer[], code: 227 | 229, asked: Extract<Expect, { type: 'passive' }> | null): Promise<readonly Buffer[]> {
    const config = this.#ctx.config()
    const metrics = this.#ctx.metrics
    // Answer in the form the client asked for: curl, ftplib and basic-ftp reject a 227 after
    // EPSV and a 229 after PASV, whatever the server sent.
    const form: 227 | 229 | 'active' = asked?.form ?? code
    const serverText = lines.map(lineText).join('\n')
    let endpoint
    try {
      endpoint = parsePassiveReply(code, serverText)
    } catch (err) {
      metrics.leaseEnded({ result: 'failed', reason: 'bad_passive_reply' })
      this.#log.warn({ reason: 'bad_passive_reply', fromServer: serverText, error: (err as Error).message }, 'data connection failed')
      return [Buffer.from(`425 Can't open data connection: the FTP server's passive reply is invalid (${(err as Error).message}).\r\n`)]
    }
    const advertisedClass = endpoint.host === null ? null : addressClass(endpoint.host)
    if (endpoint.host !== null && advertisedClass !== null) {
      metrics.advertised(advertisedClass, endpoint.host === this.#ep.upstreamAddress)
    }
    // A new passive request replaces the previous one that no client has used.
    if (this.#current !== null && !this.#current.claimed) this.#current.cancel('replaced')
    this.#current = null

    const advertise = config.advertiseAddress === 'auto' ? this.#ep.localAddress : config.advertiseAddress
    if (form === 227 && !isIPv4(advertise)) {
      // RFC 959's 227 carries IPv4 only: an IPv6 client gets a 227 only when an IPv4 advertise
      // address is configured.
      return [Buffer.from(`425 Can't open data connection: ${advertise} cannot be named in a 227 reply; use EPSV.\r\n`)]
    }
    const advertised = endpoint.host === null ? `port ${endpoint.port}` : `${endpoint.host}:${endpoint.port}`
    const fail = (reason: FailureReason, text: string, extra: object): readonly Buffer[] => {
      metrics.leaseEnded({ result: 'failed', reason })
      this.#log.warn(
        {
          reason,
          fromServer: serverText,
          advertised,
          advertisedClass,
          hint: hintFor(reason, endpoint.host, advertisedClass, this.#ep.upstreamAddress),
          ...extra,
        },
        'data connection failed',
      )
      return [Buffer.from(`425 Can't open data connection: ${text}.\r\n`)]
    }
    // What the proxy may dial: a server's reply never widens it (--upstream-data-networks).
    const targets = dataTargets(
      { mode: config.upstreamDataAddress, networks: config.upstreamDataNetworks, lowPorts: config.upstreamDataLowPorts },
      endpoint,
      this.#ep.upstreamAddress,
      this.#ep.upstreamLocalAddress,
      this.#ctx.dataMemory.lastAnswered,
      this.#ctx.ownAddresses(),
    )
    if (targets.candidates.length === 0) {
      return fail(
        'data_address_refused',
        `the FTP server's passive reply names ${advertised}, which this proxy does not connect to (see --upstream-data-networks)`,
        { refused: targets.refused },
      )
    }
    const limited = this.#takeLeaseSlot()
    if (limited !== null) return fail('lease_limit', limited, {})
    // Active mode toward the client needs no pool port: the proxy dials the client.
    let portLease: PortLease | null = null
    if (form !== 'active') {
      try {
        portLease = await this.#ctx.pool.lease(this.#ep.localAddress)
      } catch (err) {
        this.#giveLeaseSlot()
        if (err instanceof ProxyError && err.code === 'POOL_EXHAUSTED') {
          return fail('pool_exhausted', 'every passive port of the proxy is in use', {})
        }
        throw err
      }
    }
    const abandon = (...sockets: Array<Socket | null>): readonly Buffer[] => {
      for (const s of sockets) s?.destroy()
      portLease?.release()
      this.#giveLeaseSlot()
      return []
    }
    if (this.#isClosed()) return abandon()
    let dialled
    try {
      dialled = await dialFirst(targets.candidates, endpoint.port, this.#ep.upstreamLocalAddress, config.connectTimeoutMs)
    } catch (err) {
      abandon()
      if (!(err instanceof DialError)) throw err
      const tried = err.attempts.map((a) => `${a.host}:${a.port} ${a.error ?? ''}`.trim()).join(', ')
      // The control peer failed and the address the server named was not dialled by policy:
      // the operator's question is whether to list that address's network.
      if (policyRefusal(targets.refused) !== null) {
        return fail(
          'data_address_refused',
          `the FTP server's data port did not answer (${tried}), and its passive reply names ${advertised}, which this proxy does not connect to (see --upstream-data-networks)`,
          { targets: err.attempts, refused: targets.refused },
        )
      }
      return fail(`upstream_${err.reason}`, `the FTP server's data port did not answer (${tried})`, { targets: err.attempts, refused: targets.refused })
    }
    this.#ctx.dataMemory.lastAnswered = dialled.candidate.host
    metrics.dataTargets.inc({ target: dialled.candidate.kind })
    metrics.dataConnectSeconds.observe((dialled.attempts[dialled.attempts.length - 1]?.ms ?? 0) / 1000)
    let clientLeg: Socket | null = null
    if (form === 'active' && asked?.active != null) {
      const target = asked.active
      try {
        clientLeg = await connectTo(target.host, target.port, this.#ep.localAddress, config.connectTimeoutMs)
      } catch (err) {
        abandon(dialled.socket)
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
        return fail('client_timeout', `the proxy cannot connect to your data address ${target.host}:${target.port} (${code})`, {
          activeTarget: `${target.host}:${target.port}`,
          error: code,
        })
      }
    }
    if (this.#isClosed()) return abandon(dialled.socket, clientLeg)
    const lease = this.#newLease(portLease, dialled.socket)
    let out: string
    if (clientLeg !== null) {
      lease.startRelay(clientLeg)
      out = `200 ${asked?.verb ?? 'PORT'} command successful.\r\n`
    } else {
      out = form === 227 ? format227(advertise, lease.port) : format229(lease.port)
      metrics.passiveReplies.inc({ reply: String(form) })
    }
    this.#log.info(
      {
        lease: lease.id,
        fromServer: serverText,
        advertised,
        advertisedClass,
        dialled: `${dialled.candidate.host}:${endpoint.port}`,
        targets: dialled.attempts,
        toClient: out.trimEnd(),
        ...(asked?.active == null ? {} : { activeTarget: `${asked.active.host}:${asked.active.port}` }),
      },
      'passive reply rewritten',
    )
    return [Buffer.from(out)]
  }

  #onLeaseEnd(lease: DataLease, outcome: LeaseOutcome): void {
    this.#leases.delete(lease)
    this.#giveLeaseSlot()
    if (this.#current === lease) this.#current = null
    const lingering = lease.lingering
    if (lingering !== null) {
      this.#lingering++
      void lingering.then(() => {
        this.#lingering--
        this.#armIdle()
      })
    }
    const command = lease.command ?? undefined
    const { download, upload } = lease.bytes
    const seconds = lease.seconds
    const direction = command === undefined ? undefined : transferDirection(command.verb)
    const bytes = direction === 'upload' ? upload : download
    const fields = {
      lease: lease.id,
      user: this.#user,
      command: command?.verb,
      path: command?.arg,
      direction,
      bytes,
      seconds: Number(seconds.toFixed(3)),
      mbPerSecond: seconds > 0 ? Number((bytes / seconds / 1e6).toFixed(1)) : undefined,
      result: outcome.result,
      reason: 'reason' in outcome ? outcome.reason : undefined,
      error: lease.error?.message,
    }
    if (outcome.result === 'failed') {
      this.#log.warn({ ...fields, hint: hintFor(outcome.reason, null, null, this.#ep.upstreamAddress) }, 'data connection failed')
    } else {
      this.#log.info(fields, 'transfer finished')
    }
    this.#armIdle()
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /** Read through a method: after an await the state may have changed, whatever TypeScript narrowed. */
  #isClosed(): boolean {
    return this.#state === 'closed'
  }

  /** Runs a handler of a peer's event: nothing it throws leaves it; the session ends instead. */
  #guard(fn: () => void): void {
    try {
      fn()
    } catch (err) {
      this.#internalError(err)
    }
  }

  /**
   * An error no peer caused and no code path expects (a bind refused by the system, say): the
   * session ends with a 421 and a log line; the proxy and its other sessions go on.
   */
  #internalError(err: unknown): void {
    this.#log.error({ err }, 'internal error; closing the session')
    if (this.#state === 'open') this.closeWith('421 Service not available: internal error in the proxy; closing.\r\n', 'internal error')
    else this.close('internal error')
  }

  /** The session is ending: whatever the client does, its leg is destroyed --close-timeout later. */
  #beginEnding(): void {
    if (this.#state !== 'open') return
    this.#state = 'ending'
    this.#clientIn.length = 0
    this.#deadline = setTimeout(() => this.#client.destroy(), this.#ctx.config().closeTimeoutMs)
  }

  /**
   * Ends the client leg after what it was handed, and closes it once that is flushed: a client
   * that never closes its side holds nothing. One that does not read either is destroyed by the
   * deadline of #beginEnding, since its 'finish' never comes.
   */
  #endClient(last?: Buffer): void {
    if (!this.#toClient.open) return
    this.#client.once('finish', () => this.#client.destroy())
    this.#toClient.end(last)
  }

  /** The server sent its FIN. */
  #onServerLeft(): void {
    // After a QUIT, or the client's own FIN passed on, the server leaving is the client's doing.
    this.#closeReason ??= this.#quit ? 'client quit' : this.#clientEnded ? 'client closed the connection' : 'server closed the connection'
    this.#onServerGone()
  }

  /**
   * The server will answer nothing more: the replies it sent still reach the client (and
   * `final`, if given), then the client leg ends.
   */
  #onServerGone(final?: string): void {
    if (this.#serverGone) return
    this.#serverGone = true
    this.#beginEnding()
    this.#reading = null
    for (const slot of this.#awaiting) slot.done = true
    this.#awaiting.length = 0
    if (final !== undefined) this.#local(final.trimEnd())
    this.#pump()
  }

  /**
   * Marks activity. One timer per session, re-armed only when it fires early: a client sending
   * thousands of commands a second must not cost a timer each.
   */
  #armIdle(): void {
    this.#activeAt = performance.now()
    if (this.#idleTimer === null && this.#state === 'open') this.#scheduleIdle(this.#ctx.config().idleTimeoutMs)
  }

  #scheduleIdle(inMs: number): void {
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null
      if (this.#state !== 'open') return
      const ms = this.#ctx.config().idleTimeoutMs
      const quiet = performance.now() - this.#activeAt
      // The idle timeout counts only while no transfer runs: a long transfer keeps the control
      // connection silent for as long as it takes.
      if (quiet < ms || this.transferActive) return this.#scheduleIdle(Math.max(ms - quiet, 50))
      this.#log.info({ idleSeconds: ms / 1000 }, 'control connection idle; closing')
      this.closeWith(`421 Idle timeout (${ms / 1000} s): closing control connection.\r\n`, 'idle timeout')
    }, inMs)
    this.#idleTimer.unref()
  }

  #onError(leg: 'client' | 'upstream', err: Error): void {
    this.#log.debug({ leg, error: err.message }, 'control connection error')
    if (leg === 'upstream') this.#closeReason ??= `upstream error: ${(err as NodeJS.ErrnoException).code ?? err.message}`
  }

  #onLegClosed(leg: 'client' | 'upstream'): void {
    this.#closedLegs++
    if (leg === 'client') {
      this.#closeReason ??= this.#quit ? 'client quit' : 'client closed the connection'
      // Nothing more can reach the client: the server leg goes too.
      this.#upstream.destroy()
    } else {
      this.#closeReason ??= this.#quit ? 'client quit' : this.#clientEnded ? 'client closed the connection' : 'server closed the connection'
      this.#guard(() => this.#onServerGone())
    }
    if (this.#closedLegs < 2) return
    this.#state = 'closed'
    for (const timer of [this.#idleTimer, this.#greetTimer, this.#deadline]) if (timer !== null) clearTimeout(timer)
    this.#idleTimer = null
    this.#slots.length = 0
    this.#awaiting.length = 0
    this.#clientIn.length = 0
    this.#held = 0
    for (const lease of [...this.#leases]) lease.cancel('closed')
    this.#ctx.metrics.sessionsActive.dec()
    this.#log.info(
      {
        clientPort: this.#ep.clientPort,
        upstreamLocalPort: this.#ep.upstreamLocalPort,
        seconds: Number(((performance.now() - this.#openedAt) / 1000).toFixed(3)),
        reason: this.#closeReason,
      },
      'session closed',
    )
    if (this.#leases.size === 0) this.#resolveDone()
    else void Promise.all([...this.#leases].map((l) => l.drained())).then(() => this.#resolveDone())
  }
}

const LOCAL: Expect = Object.freeze({ type: 'local' })
const PLAIN: Expect = Object.freeze({ type: 'plain' })
const FEAT: Expect = Object.freeze({ type: 'feat' })

// The proxy's own refusals come from a small set of texts; a client repeating a refused command
// thousands of times should not cost a new buffer each.
const REPLY_CACHE = new Map<string, Buffer>()
function replyBytes(text: string): Buffer {
  let b = REPLY_CACHE.get(text)
  if (b === undefined) {
    b = Buffer.from(`${text}\r\n`)
    if (REPLY_CACHE.size < 256) REPLY_CACHE.set(text, b)
  }
  return b
}

/**
 * Whether a reply must be read whole before the client gets it: a passive reply (rewritten),
 * any reply to a passive request (it may be retried or replaced), and a transfer's final reply
 * (held until the data has drained). Everything else streams through line by line.
 */
function readWhole(expect: Expect, code: number): boolean {
  if (code === 227 || code === 229) return true
  if (expect.type === 'passive') return true
  return expect.type === 'transfer' && code >= 200
}
