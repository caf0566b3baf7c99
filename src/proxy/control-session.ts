// One client <-> server control session: it wires the rooms to the two legs. Commands are framed
// and decided by the command policy (command-policy.ts); replies keep the client's order
// (reply-order.ts); passive and active requests become leases (passive.ts, transfer.ts); the
// session's life is one state machine (lifecycle.ts). Built over plain Duplex streams so that a
// leg can be swapped for a TLS socket after AUTH TLS.
//
// What the hostile-peer review taught (DESIGN.md): one writer per leg, and flow control in one
// place (#flow): the client is read only while commands can be taken, the server only while the
// client reads its replies; one teardown, with a --close-timeout deadline after any final reply;
// no exception from a peer's bytes leaves a handler (#guard).

import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { LineTooLongError } from '../errors.js'
import { isAborWithoutLf, logSafe, parseCommand, type ActiveTarget, type Command } from '../protocol/commands.js'
import { decideCommand } from './command-policy.js'
import { LineReader } from './line-reader.js'
import { IdleClock } from './idle-clock.js'
import { LegWriter } from './leg-writer.js'
import { Lifecycle } from './lifecycle.js'
import type { CommandRefusal } from './outcomes.js'
import { DataSetups } from './passive.js'
import { ReplyOrder, type Expect, type Slot } from './reply-order.js'
import { DEFAULT_LIMITS, type SessionContext, type SessionEndpoints, type SessionLimits } from './session-context.js'

export { DEFAULT_LIMITS, type SessionContext, type SessionEndpoints, type SessionLimits } from './session-context.js'

export class ControlSession {
  readonly id: string
  readonly #client: Duplex
  readonly #upstream: Duplex
  readonly #toClient: LegWriter
  readonly #toServer: LegWriter
  readonly #endpoints: SessionEndpoints
  readonly #shared: SessionContext
  readonly #limits: SessionLimits
  readonly #log: Logger
  readonly #replies: ReplyOrder
  readonly #data: DataSetups
  readonly #life = new Lifecycle()
  /** Client bytes not yet taken as commands. */
  readonly #commands: LineReader
  /** Server bytes not yet read as reply lines. */
  readonly #serverIn: LineReader
  /** The server's FIN came (or its leg closed); #serverIn may still hold its last lines. */
  #serverEnded = false
  /** A command whose setup is asynchronous (a relayed PORT) holds the ones behind it. */
  #commandBusy = false
  #epsvAll = false
  #serverWithoutEpsv = false
  #user: string | undefined
  #greeted = false
  readonly #idle: IdleClock
  #greetTimer: NodeJS.Timeout | null = null
  #closeDeadline: NodeJS.Timeout | null = null
  /** Refusal reasons already logged at info in this session: the rest go to debug. */
  readonly #refusalsLogged = new Set<CommandRefusal>()
  #refusedInRow = 0
  readonly #openedAt = performance.now()
  readonly #done: Promise<void>
  #resolveDone!: () => void

  constructor(id: string, client: Duplex, upstream: Duplex, endpoints: SessionEndpoints, shared: SessionContext, log: Logger) {
    this.id = id
    this.#client = client
    this.#upstream = upstream
    this.#endpoints = endpoints
    this.#shared = shared
    this.#limits = shared.limits ?? DEFAULT_LIMITS
    this.#log = log
    this.#toClient = new LegWriter(client, () => this.#guard(() => this.#pump()))
    this.#toServer = new LegWriter(upstream, () => this.#guard(() => this.#pump()))
    const maxLineBytes = this.#limits.maxLineBytes ?? shared.config().maxLineBytes
    this.#commands = new LineReader(maxLineBytes, isAborWithoutLf)
    this.#serverIn = new LineReader(maxLineBytes)
    this.#replies = new ReplyOrder({
      maxReplyBytes: this.#limits.maxReplyBytes,
      onReply: (slot, code, lines) => this.#onReply(slot, code, lines),
      onReady: () => this.#guard(() => this.#pump()),
      onError: (err) => this.#internalError(err),
    })
    this.#data = new DataSetups({
      ctx: shared,
      ep: endpoints,
      log,
      isClosed: () => this.#life.phase === 'closed',
      user: () => this.#user,
      onLeaseEnd: () => this.#markActivity(),
    })
    this.#idle = new IdleClock({
      timeoutMs: () => this.#shared.config().idleTimeoutMs,
      busy: () => this.transferActive,
      onIdle: (ms) => {
        this.#log.info({ idleSeconds: ms / 1000 }, 'control connection idle; closing')
        this.closeWith(`421 Idle timeout (${ms / 1000} s): closing control connection.\r\n`, 'idle timeout')
      },
    })
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
    return this.#data.transferRunning || this.#replies.someTransfer()
  }

  start(): void {
    const client = this.#client
    const upstream = this.#upstream
    client.on('data', (chunk: Buffer) => this.#guard(() => this.#onClientData(chunk)))
    upstream.on('data', (chunk: Buffer) => this.#guard(() => this.#onServerData(chunk)))
    // A FIN from the client is passed on; the server's last replies still reach the client.
    client.on('end', () => {
      this.#life.clientEnded()
      this.#guard(() => this.#pump())
    })
    upstream.on('end', () => this.#guard(() => this.#onServerEnded()))
    client.on('error', (err) => this.#log.debug({ leg: 'client', error: err.message }, 'control connection error'))
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      this.#log.debug({ leg: 'upstream', error: err.message }, 'control connection error')
      this.#life.because(`upstream error: ${err.code ?? err.message}`)
    })
    client.on('close', () => this.#onLegClosed('client'))
    upstream.on('close', () => this.#onLegClosed('upstream'))
    // RFC 959 5.4: the greeting (120 then 220, or 421) answers no command, and comes first.
    this.#replies.awaitReply(GREETING)
    this.#markActivity()
    const greetMs = this.#shared.config().greetingTimeoutMs
    this.#greetTimer = setTimeout(() => {
      if (this.#greeted) return
      this.#log.warn({ greetingTimeoutSeconds: greetMs / 1000 }, 'the FTP server accepted the connection but sent no greeting; closing')
      this.closeWith(`421 Service not available: the FTP server sent no greeting within ${greetMs / 1000} s.\r\n`, 'no greeting')
    }, greetMs)
    this.#greetTimer.unref()
    const ep = this.#endpoints
    this.#log.info(
      { clientPort: ep.clientPort, upstream: `${ep.upstreamAddress}:${ep.upstreamPort}`, upstreamLocalPort: ep.upstreamLocalPort },
      'session opened',
    )
  }

  /** Closes the session now: both legs and every lease. Safe to call twice. */
  close(reason: string): void {
    if (this.#life.phase === 'closed') return
    this.#life.because(reason)
    this.#client.destroy()
    this.#upstream.destroy()
  }

  /**
   * Sends the client a final reply, then closes the session (idle timeout, shutdown, bad input):
   * the server leg at once, the client leg once it has the reply or --close-timeout later,
   * whichever comes first. Safe to call twice; the first reason stands.
   */
  closeWith(reply: string, reason: string): void {
    if (this.#life.phase !== 'open') return
    this.#life.because(reason)
    this.#beginEnding()
    // Replies still owed will not come: the final reply goes behind what the client already has.
    this.#replies.clear()
    this.#upstream.destroy()
    this.#endClient(Buffer.from(reply))
    this.#flow()
  }

  // ---- client -> server -------------------------------------------------------------------

  #onClientData(chunk: Buffer): void {
    // Once the session is ending (server gone, or a final reply sent), client bytes are dropped.
    if (this.#life.phase !== 'open') return
    this.#commands.push(chunk)
    this.#pump()
  }

  /** Whether another command can be handled now without buffering more than the limits allow. */
  #canTakeCommand(): boolean {
    return (
      this.#life.phase === 'open' &&
      !this.#commandBusy &&
      this.#replies.pending < this.#limits.maxPendingCommands &&
      !this.#toClient.backedUp &&
      !this.#toServer.backedUp
    )
  }

  #takeCommands(): void {
    while (this.#commands.waiting && this.#canTakeCommand()) {
      const line = this.#nextCommandLine()
      if (line === null) break
      const busy = this.#onCommand(line)
      if (busy instanceof Promise) {
        this.#commandBusy = true
        busy
          .catch((err: unknown) => this.#internalError(err))
          .finally(() => {
            this.#commandBusy = false
            this.#guard(() => this.#pump())
          })
      }
    }
  }

  /** The next complete command line of what the client sent, or null. */
  #nextCommandLine(): Buffer | null {
    try {
      return this.#commands.next()
    } catch (err) {
      if (!(err instanceof LineTooLongError)) throw err
      this.#log.warn({ limit: err.limit }, 'client sent a command line over the limit; closing')
      this.closeWith(`500 Command line too long (limit ${err.limit} bytes).\r\n`, 'client line too long')
      return null
    }
  }

  #onCommand(line: Buffer): void | Promise<void> {
    const command = parseCommand(line)
    this.#markActivity()
    if (this.#log.isLevelEnabled('debug')) this.#log.debug({ cmd: logSafe(command) }, 'command')
    const { action, set } = decideCommand(
      {
        ending: this.#life.phase !== 'open',
        epsvAll: this.#epsvAll,
        serverWithoutEpsv: this.#serverWithoutEpsv,
        leasePending: this.#data.leasePending,
        activeMode: this.#shared.config().activeMode,
        clientAddress: this.#endpoints.clientAddress,
        serverFamily: this.#endpoints.upstreamFamily,
      },
      command,
    )
    if (set?.user !== undefined) this.#user = set.user
    if (set?.quit === true) this.#life.quit()
    if (set?.epsvAll === true) this.#epsvAll = true
    switch (action.type) {
      case 'drop':
        return
      case 'forward':
        this.#forward(action.reply === 'feat' ? FEAT : PLAIN, line)
        return
      case 'transfer': {
        const lease = this.#data.takePending(command)
        this.#forward(lease === null ? PLAIN : { type: 'transfer', lease, preliminary: false }, line)
        return
      }
      case 'abort':
        this.#data.cancelAll('aborted')
        this.#forward(PLAIN, Buffer.from(action.send))
        return
      case 'passive': {
        // The commands behind a passive request wait until it is answered: a transfer command
        // sent right behind it belongs to the lease its reply makes, and an EPSV the server
        // refuses is asked again as PASV before any later command reaches the server.
        const expect = { type: 'passive', verb: command.verb, form: action.form, active: action.active, retried: false } as const
        const slot = this.#forward(expect, action.send === null ? line : Buffer.from(action.send))
        return new Promise((resolve) => {
          slot.onDone = resolve
        })
      }
      case 'relay':
        return this.#relayActive(command, action.active)
      case 'reply':
        return this.#local(action.text)
      case 'refuse':
        return this.#refuse(command, action.reason, action.text)
    }
  }

  /** --active-mode relay: the PORT/EPRT the proxy sends the server, once its pool port is bound. */
  async #relayActive(command: Command, target: ActiveTarget): Promise<void> {
    const setup = await this.#data.relayActive(command, target)
    if (setup === null) return
    if ('reply' in setup) return this.#local(setup.reply)
    this.#forward({ type: 'relayed', lease: setup.lease }, setup.send)
  }

  #forward(expect: Expect, bytes: Buffer): Slot {
    this.#refusedInRow = 0
    const slot = this.#replies.awaitReply(expect)
    this.#toServer.write(bytes)
    return slot
  }

  /** Answers a command without the server, counted by reason. */
  #refuse(command: Command, reason: CommandRefusal, text: string): void {
    this.#shared.metrics.commandsRefused.inc({ reason })
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
    this.#replies.local(LOCAL, replyBytes(text))
  }

  // ---- server -> client -------------------------------------------------------------------

  #onServerData(chunk: Buffer): void {
    if (this.#life.phase !== 'open') return
    this.#serverIn.push(chunk)
    this.#pump()
  }

  /** Whether another server line can be taken now: the client reads, or the line is the one due. */
  #canTakeReply(): boolean {
    return (
      this.#life.phase === 'open' &&
      !this.#toClient.backedUp &&
      (this.#replies.held < this.#limits.maxHeldReplyBytes || this.#replies.headAwaitsServer)
    )
  }

  /** Takes server lines into the replies while they fit (see #canTakeReply). */
  #takeReplies(): void {
    try {
      while (this.#serverIn.waiting && this.#canTakeReply()) {
        const line = this.#serverIn.next()
        if (line === null) break
        this.#replies.serverLine(line)
      }
    } catch (err) {
      if (!(err instanceof LineTooLongError)) throw err
      this.#log.warn({ limit: err.limit }, 'server sent a reply over the limit; closing')
      this.#life.because('server reply too long')
      this.#upstream.destroy()
      this.#onServerGone(`421 The FTP server sent a reply longer than ${err.limit} bytes; closing.`)
    }
  }

  /** A reply is complete: what the client gets for it, by the command it answers. */
  #onReply(slot: Slot, code: number, lines: readonly Buffer[]): void {
    const e = slot.expect
    this.#log.trace({ code }, 'reply')
    if (code < 200 && e.type !== 'unsolicited') {
      // RFC 959 4.2: 1yz replies are preliminary; the command is answered by the next final one.
      if (e.type === 'transfer') e.preliminary = true
      return this.#replies.pass(slot, lines)
    }
    if (e.type === 'greeting') this.#greeted = true
    if (code === 227 || code === 229) {
      return this.#replies.later(slot, () => this.#data.passiveReply(lines, code, e.type === 'passive' ? e : null), lines)
    }
    if (e.type === 'passive' && e.form === 229 && !e.retried && (code === 500 || code === 502)) {
      // A server without EPSV (500: not understood, 502: not implemented): ask it with PASV and
      // answer the client's EPSV with a 229 all the same. Other refusals (530, 550) pass on.
      this.#serverWithoutEpsv = true
      e.retried = true
      this.#log.info({ code }, 'server refused EPSV; asking with PASV')
      this.#replies.awaitAgain(slot)
      return this.#toServer.write(Buffer.from('PASV\r\n'))
    }
    if (e.type === 'transfer' && code < 300) {
      // The 226 is held until the client's leg has every byte; the lease ends once it is out.
      e.lease.transferSucceeded()
      slot.onSent = () => e.lease.replyPassed()
      return this.#replies.later(slot, () => this.#data.finalReply(e.lease, lines), lines)
    }
    if (e.type === 'passive' && e.form === 'active' && code >= 400) {
      // The server refused the passive request made for the client's PORT/EPRT.
      return this.#replies.finish(slot, [Buffer.from(`425 Can't open data connection: the FTP server refused passive mode (${code}).\r\n`)])
    }
    if (e.type === 'relayed' && code >= 400) e.lease.cancel('refused')
    if (e.type === 'transfer') {
      // The server refused the transfer command, or reported a failed transfer.
      if (e.preliminary) e.lease.fail('reset')
      else e.lease.cancel('refused')
    }
    this.#replies.finish(slot, lines)
  }

  /**
   * Moves the session on: hands the slots' bytes to the client's writer in order, as far as it
   * takes them, and takes the commands that then fit, until neither can go further. Everything
   * handed over in one pass goes out in one write (writev), not one syscall per reply.
   */
  #pump(): void {
    this.#client.cork()
    try {
      for (;;) {
        this.#replies.writeTo(this.#toClient)
        if (this.#serverIn.waiting && this.#canTakeReply()) {
          this.#takeReplies()
          continue
        }
        if (!this.#commands.waiting || !this.#canTakeCommand()) break
        this.#takeCommands()
      }
    } finally {
      this.#client.uncork()
    }
    // The client's FIN goes to the server once every command before it has; the server's
    // leaving counts once every reply line it sent before it has been taken.
    if (this.#life.clientHasEnded && !this.#commands.waiting && !this.#commandBusy) this.#toServer.end()
    if (this.#serverEnded && !this.#serverIn.waiting) this.#onServerGone()
    // The server is gone and its last reply is out: the session ends, whether or not the
    // client closes its side.
    if (this.#life.phase === 'ending' && this.#replies.pending === 0) this.#endClient()
    this.#flow()
  }

  /**
   * Flow control, in one place: the client is read while commands can be taken (and, once the
   * session is ending, to drop its bytes and see its FIN); the server while the client reads.
   */
  #flow(): void {
    const phase = this.#life.phase
    if (phase === 'closed') return
    const readClient = phase !== 'open' || (!this.#commands.waiting && this.#canTakeCommand())
    if (readClient) this.#client.resume()
    else this.#client.pause()
    // While the next reply due to the client is the server's to give, the server is read
    // whatever is held behind it: that reply is the only way on.
    const readServer = !this.#serverIn.waiting && this.#canTakeReply()
    if (readServer) this.#upstream.resume()
    else this.#upstream.pause()
  }

  // ---- lifecycle ----------------------------------------------------------------------------

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
    if (this.#life.phase === 'open') this.closeWith('421 Service not available: internal error in the proxy; closing.\r\n', 'internal error')
    else this.close('internal error')
  }

  /** The session is ending: whatever the client does, its leg is destroyed --close-timeout later. */
  #beginEnding(): void {
    if (!this.#life.end()) return
    this.#commands.clear()
    this.#armCloseDeadline()
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

  /** The server sent its FIN, or its leg closed: it is gone once the lines it sent are taken. */
  #onServerEnded(): void {
    this.#serverEnded = true
    // Its last lines may wait for a client that does not read: the deadline starts now.
    this.#armCloseDeadline()
    this.#pump()
  }

  /** Whatever the client does, its leg is destroyed --close-timeout from the first call. */
  #armCloseDeadline(): void {
    this.#closeDeadline ??= setTimeout(() => this.#client.destroy(), this.#shared.config().closeTimeoutMs)
  }

  /**
   * The server will answer nothing more (its FIN, its leg closed, or a reply too long): the
   * replies it sent still reach the client (and `final`, if given), then the client leg ends.
   */
  #onServerGone(final?: string): void {
    this.#life.serverLeft()
    if (this.#life.phase !== 'open') return
    this.#beginEnding()
    this.#replies.serverGone()
    if (final !== undefined) this.#local(final)
    this.#pump()
  }

  #markActivity(): void {
    if (this.#life.phase === 'open') this.#idle.mark()
  }

  #onLegClosed(leg: 'client' | 'upstream'): void {
    if (leg === 'client') {
      this.#life.clientClosed()
      // Nothing more can reach the client: the server leg goes too.
      this.#upstream.destroy()
    } else {
      this.#guard(() => this.#onServerEnded())
    }
    if (!this.#life.legClosed()) return
    this.#idle.stop()
    for (const timer of [this.#greetTimer, this.#closeDeadline]) if (timer !== null) clearTimeout(timer)
    this.#replies.close()
    this.#commands.clear()
    this.#data.cancelAll('closed')
    this.#shared.metrics.sessionsActive.dec()
    const ep = this.#endpoints
    const seconds = Number(((performance.now() - this.#openedAt) / 1000).toFixed(3))
    this.#log.info({ clientPort: ep.clientPort, upstreamLocalPort: ep.upstreamLocalPort, seconds, reason: this.#life.reason }, 'session closed')
    // Done once no lease holds a port and no reply work (a rewrite mid-dial) is left.
    void Promise.all([this.#data.settled(), this.#replies.settled()]).then(() => this.#data.settled()).then(() => this.#resolveDone())
  }
}

const GREETING: Expect = Object.freeze({ type: 'greeting' })
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
