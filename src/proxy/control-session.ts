// One client <-> server control session: it wires the rooms to the two legs. Each leg
// (control-leg.ts) holds its stream, its unread lines and its one writer, and can be swapped
// mid-session for a TLS socket. Commands are decided and carried out by the conversation
// (conversation.ts, over the pure command-policy.ts); replies keep the client's order
// (reply-order.ts); passive and active requests become leases (passive.ts, transfer.ts); when
// each leg is read is flow-control.ts; the session's life is one state machine (lifecycle.ts)
// with its clocks (session-clocks.ts).
//
// What the hostile-peer review taught (DESIGN.md): one writer per leg, flow control in one place,
// one teardown with a --close-timeout deadline after any final reply, and no exception from a
// peer's bytes leaving a handler (#guard).

import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { LineTooLongError } from '../errors.js'
import { isAborWithoutLf } from '../protocol/commands.js'
import { LineReader } from './line-reader.js'
import { ControlLeg } from './control-leg.js'
import { FlowControl } from './flow-control.js'
import { Lifecycle } from './lifecycle.js'
import { SessionClocks } from './session-clocks.js'
import { DataSetups } from './passive.js'
import { Conversation } from './conversation.js'
import { ReplyOrder } from './reply-order.js'
import { DEFAULT_LIMITS, type SessionContext, type SessionEndpoints, type SessionLimits } from './session-context.js'

export { DEFAULT_LIMITS, type SessionContext, type SessionEndpoints, type SessionLimits } from './session-context.js'

export class ControlSession {
  readonly id: string
  /** The client's leg: its commands not yet taken, and the writer of every reply it gets. */
  readonly #client: ControlLeg
  /** The server's leg: its reply lines not yet taken, and the writer of every command it gets. */
  readonly #server: ControlLeg
  readonly #endpoints: SessionEndpoints
  readonly #shared: SessionContext
  readonly #limits: SessionLimits
  readonly #log: Logger
  readonly #replies: ReplyOrder
  readonly #data: DataSetups
  readonly #life = new Lifecycle()
  /** The server's FIN came (or its leg closed); its leg may still hold its last lines. */
  #serverEnded = false
  readonly #clocks: SessionClocks
  readonly #conversation: Conversation
  readonly #flow: FlowControl
  readonly #openedAt = performance.now()
  readonly #done: Promise<void>
  #resolveDone!: () => void

  constructor(id: string, client: Duplex, upstream: Duplex, endpoints: SessionEndpoints, shared: SessionContext, log: Logger) {
    this.id = id
    this.#endpoints = endpoints
    this.#shared = shared
    this.#limits = shared.limits ?? DEFAULT_LIMITS
    this.#log = log
    const maxLineBytes = this.#limits.maxLineBytes ?? shared.config().maxLineBytes
    const pump = (): void => this.#guard(() => this.#pump())
    this.#client = new ControlLeg(client, new LineReader(maxLineBytes, isAborWithoutLf), {
      onData: (chunk) => this.#guard(() => this.#onData(this.#client, chunk)),
      // A FIN from the client is passed on; the server's last replies still reach the client.
      onEnd: () => {
        this.#life.clientEnded()
        pump()
      },
      onError: (err) => this.#log.debug({ leg: 'client', error: err.message }, 'control connection error'),
      onClose: () => this.#onLegClosed('client'),
      onDrain: pump,
    })
    this.#server = new ControlLeg(upstream, new LineReader(maxLineBytes), {
      onData: (chunk) => this.#guard(() => this.#onData(this.#server, chunk)),
      onEnd: () => this.#guard(() => this.#onServerEnded()),
      onError: (err) => {
        this.#log.debug({ leg: 'upstream', error: err.message }, 'control connection error')
        this.#life.because(`upstream error: ${err.code ?? err.message}`)
      },
      onClose: () => this.#onLegClosed('upstream'),
      onDrain: pump,
    })
    this.#replies = new ReplyOrder({
      maxReplyBytes: this.#limits.maxReplyBytes,
      onReply: (slot, code, lines) => this.#conversation.onReply(slot, code, lines),
      onReady: () => this.#guard(() => this.#pump()),
      onError: (err) => this.#internalError(err),
    })
    this.#data = new DataSetups({
      shared,
      endpoints,
      log,
      isClosed: () => this.#life.phase === 'closed',
      user: () => this.#conversation.user,
      onLeaseEnd: () => this.#markActivity(),
      dataTls: () => this.#conversation.tls.dataTls(),
    })
    this.#conversation = new Conversation({
      swapLeg: (leg, make) => this.swapLeg(leg, make),
      afterClientFlush: (fn) => this.#client.afterFlush(fn),
      shared,
      endpoints,
      log,
      life: this.#life,
      replies: this.#replies,
      data: this.#data,
      maxRefusedInRow: this.#limits.maxRefusedInRow,
      toServer: () => this.#server.writer,
      closeWith: (reply, reason) => this.closeWith(reply, reason),
      markActivity: () => this.#markActivity(),
      onReady: pump,
      onError: (err) => this.#internalError(err),
    })
    this.#flow = new FlowControl({
      life: this.#life,
      client: this.#client,
      server: this.#server,
      replies: this.#replies,
      conversation: this.#conversation,
      limits: this.#limits,
    })
    this.#clocks = new SessionClocks({
      config: shared.config,
      busy: () => this.transferActive,
      onIdle: (ms) => {
        this.#log.info({ idleSeconds: ms / 1000 }, 'control connection idle; closing')
        this.closeWith(`421 Idle timeout (${ms / 1000} s): closing control connection.\r\n`, 'idle timeout')
      },
      onGreetingDeadline: (ms) => {
        if (this.#conversation.greeted) return
        this.#log.warn({ greetingTimeoutSeconds: ms / 1000 }, 'the FTP server accepted the connection but sent no greeting; closing')
        this.closeWith(`421 Service not available: the FTP server sent no greeting within ${ms / 1000} s.\r\n`, 'no greeting')
      },
      onCloseDeadline: () => this.#client.destroy(),
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
    this.#client.listen()
    this.#server.listen()
    this.#conversation.start()
    // RFC 959 5.4: the greeting (120 then 220, or 421) answers no command, and comes first.
    this.#replies.awaitReply({ type: 'greeting' })
    this.#markActivity()
    this.#clocks.start()
    const ep = this.#endpoints
    this.#log.info(
      { clientPort: ep.clientPort, upstream: `${ep.upstreamAddress}:${ep.upstreamPort}`, upstreamLocalPort: ep.upstreamLocalPort },
      'session opened',
    )
  }

  /**
   * Replaces a control leg's stream mid-session (AUTH TLS: a TLS socket made from the plain
   * one): see ControlLeg.swap. Commands and replies in flight carry on over the new stream.
   */
  swapLeg(leg: 'client' | 'server', make: (unread: Buffer, old: Duplex) => Duplex): void {
    if (this.#life.phase === 'closed') return
    ;(leg === 'client' ? this.#client : this.#server).swap(make)
    this.#guard(() => this.#pump())
  }

  /** Closes the session now: both legs and every lease. Safe to call twice. */
  close(reason: string): void {
    if (this.#life.phase === 'closed') return
    this.#life.because(reason)
    this.#client.destroy()
    this.#server.destroy()
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
    this.#server.destroy()
    this.#client.endThenClose(Buffer.from(reply))
    this.#flow.apply()
  }

  // ---- client -> server -------------------------------------------------------------------

  /** A leg's bytes wait in its reader until #pump takes them; once the session is ending, they are dropped. */
  #onData(leg: ControlLeg, chunk: Buffer): void {
    if (this.#life.phase !== 'open') return
    leg.lines.push(chunk)
    this.#pump()
  }

  #takeCommands(): void {
    while (this.#client.lines.waiting && this.#flow.canTakeCommand()) {
      const line = this.#nextCommandLine()
      if (line === null) break
      this.#conversation.take(line)
    }
  }

  /** The next complete command line of what the client sent, or null. */
  #nextCommandLine(): Buffer | null {
    try {
      return this.#client.lines.next()
    } catch (err) {
      if (!(err instanceof LineTooLongError)) throw err
      this.#log.warn({ limit: err.limit }, 'client sent a command line over the limit; closing')
      this.closeWith(`500 Command line too long (limit ${err.limit} bytes).\r\n`, 'client line too long')
      return null
    }
  }

  // ---- server -> client -------------------------------------------------------------------

  /** Takes server lines into the replies while they fit (see FlowControl.canTakeReply). */
  #takeReplies(): void {
    try {
      while (this.#server.lines.waiting && this.#flow.canTakeReply()) {
        const line = this.#server.lines.next()
        if (line === null) break
        this.#replies.serverLine(line)
      }
    } catch (err) {
      if (!(err instanceof LineTooLongError)) throw err
      this.#log.warn({ limit: err.limit }, 'server sent a reply over the limit; closing')
      this.#life.because('server reply too long')
      this.#server.destroy()
      this.#onServerGone(`421 The FTP server sent a reply longer than ${err.limit} bytes; closing.`)
    }
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
        this.#replies.writeTo(this.#client.writer)
        if (this.#server.lines.waiting && this.#flow.canTakeReply()) {
          this.#takeReplies()
          continue
        }
        if (!this.#client.lines.waiting || !this.#flow.canTakeCommand()) break
        this.#takeCommands()
      }
    } finally {
      this.#client.uncork()
    }
    // The client's FIN goes to the server once every command before it has; the server's
    // leaving counts once every reply line it sent before it has been taken.
    if (this.#life.clientHasEnded && !this.#client.lines.waiting && !this.#conversation.busy) this.#server.writer.end()
    if (this.#serverEnded && !this.#server.lines.waiting) this.#onServerGone()
    // The server is gone and its last reply is out: the session ends, whether or not the
    // client closes its side.
    // (A client that does not read gets no 'finish': the close deadline destroys its leg.)
    if (this.#life.phase === 'ending' && this.#replies.pending === 0) this.#client.endThenClose()
    this.#flow.apply()
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
    this.#client.lines.clear()
    this.#clocks.armClose()
  }

  /** The server sent its FIN, or its leg closed: it is gone once the lines it sent are taken. */
  #onServerEnded(): void {
    this.#serverEnded = true
    // Its last lines may wait for a client that does not read: the deadline starts now.
    this.#clocks.armClose()
    this.#pump()
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
    if (final !== undefined) this.#conversation.ownReply(final)
    this.#pump()
  }

  #markActivity(): void {
    if (this.#life.phase === 'open') this.#clocks.activity()
  }

  #onLegClosed(leg: 'client' | 'upstream'): void {
    if (leg === 'client') {
      this.#life.clientClosed()
      // Nothing more can reach the client: the server leg goes too.
      this.#server.destroy()
    } else {
      this.#guard(() => this.#onServerEnded())
    }
    if (!this.#life.legClosed()) return
    this.#clocks.stop()
    this.#replies.close()
    this.#client.lines.clear()
    this.#data.cancelAll('closed')
    this.#shared.metrics.sessionsActive.dec()
    const ep = this.#endpoints
    const seconds = Number(((performance.now() - this.#openedAt) / 1000).toFixed(3))
    this.#log.info({ clientPort: ep.clientPort, upstreamLocalPort: ep.upstreamLocalPort, seconds, reason: this.#life.reason, tls: this.#conversation.tls.described }, 'session closed')
    // Done once no lease holds a port and no reply work (a rewrite mid-dial) is left.
    void Promise.all([this.#data.settled(), this.#replies.settled()]).then(() => this.#data.settled()).then(() => this.#resolveDone())
  }
}
