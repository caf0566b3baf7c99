// The session's FTP conversation: each command the client sends, decided by the command policy
// (command-policy.ts) and carried out (forwarded, answered by the proxy, or turned into a data
// connection); each complete server reply, routed by the command it answers (a 227/229 becomes
// a lease and the proxy's own reply, an EPSV a server does not know is asked again as PASV, a
// transfer's success waits for its data). It holds what the policy needs to know of the
// session (the user, EPSV ALL, a server without EPSV), and nothing of sockets or flow control:
// ControlSession takes the lines off the legs and decides when.

import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { logSafe, parseCommand, type ActiveTarget, type Command } from '../protocol/commands.js'
import { decideCommand } from './command-policy.js'
import type { LegWriter } from './leg-writer.js'
import type { Lifecycle } from './lifecycle.js'
import type { CommandRefusal } from './outcomes.js'
import type { DataSetups } from './passive.js'
import { Refusals } from './refusals.js'
import { SessionTls } from './session-tls.js'
import { TlsConversation } from './tls-conversation.js'
import type { Expect, ReplyOrder, Slot } from './reply-order.js'
import type { SessionContext, SessionEndpoints } from './session-context.js'

export interface ConversationDeps {
  readonly shared: SessionContext
  readonly endpoints: SessionEndpoints
  readonly log: Logger
  readonly life: Lifecycle
  readonly replies: ReplyOrder
  readonly data: DataSetups
  /** SessionLimits.maxRefusedInRow. */
  readonly maxRefusedInRow: number
  /** The writer toward the server now (a swapped leg has a new one). */
  readonly toServer: () => LegWriter
  /** Ends the session with a final reply to the client. */
  readonly closeWith: (reply: string, reason: string) => void
  /** Replaces a control leg's stream (AUTH TLS). */
  readonly swapLeg: (leg: 'client' | 'server', make: (unread: Buffer, old: Duplex) => Duplex) => void
  /** Calls `fn` once what was handed to the client's writer has gone to the kernel. */
  readonly afterClientFlush: (fn: () => void) => void
  /** The client did something: the idle clock restarts. */
  readonly markActivity: () => void
  /** A command that held the ones behind it is through: more can be taken. */
  readonly onReady: () => void
  /** Its setup failed in a way no peer caused. */
  readonly onError: (err: unknown) => void
}

export class Conversation {
  readonly #deps: ConversationDeps
  readonly #refusals: Refusals
  /** FTPS state and upgrades of this session. */
  readonly tls: SessionTls
  readonly #tlsTalk: TlsConversation
  #epsvAll = false
  #serverWithoutEpsv = false
  #user: string | undefined
  #greeted = false
  /** Setups under way that hold the commands behind them (see busy). */
  #blockers = 0
  /**
   * The server's TLS goes on before any command of the client's (--upstream-tls required or
   * implicit, or an implicit FTPS client under mirror): ends the hold on commands once it is on
   * (or the session ends).
   */
  readonly #serverTlsFirst: (() => void) | null = null

  constructor(deps: ConversationDeps) {
    this.#deps = deps
    this.#refusals = new Refusals(deps.shared.metrics, deps.log, deps.maxRefusedInRow)
    this.tls = new SessionTls({ settings: deps.shared.tls?.(), config: deps.shared.config, metrics: deps.shared.metrics, log: deps.log, swap: deps.swapLeg })
    this.#tlsTalk = new TlsConversation(this.tls, {
      log: deps.log,
      replies: deps.replies,
      forward: (expect, bytes) => this.#forward(expect, bytes),
      closeWith: deps.closeWith,
      afterClientFlush: deps.afterClientFlush,
    })
    const mode = deps.shared.config().upstreamTls
    if (mode === 'required' || mode === 'implicit' || (mode === 'mirror' && deps.endpoints.implicitTls === true)) {
      // No command of the client's reaches the server before its TLS is on, not even one sent
      // before the greeting. An implicit FTPS client has TLS from its first byte: under mirror
      // the server's comes right after its greeting, as under required.
      let release!: () => void
      this.#hold(new Promise<void>((resolve) => (release = resolve)))
      this.#serverTlsFirst = release
    }
  }

  /**
   * The session's first step, before any byte is read: TLS on the legs that have it from the
   * first byte (an implicit FTPS client, --upstream-tls implicit). The greeting is read and
   * written over it.
   */
  start(): void {
    if (this.#deps.endpoints.implicitTls === true) void this.#tlsTalk.implicitClient()
    if (this.#deps.shared.config().upstreamTls === 'implicit') {
      void this.#tlsTalk.implicitServer().then((ok) => {
        if (!ok) this.#serverTlsFirst?.()
      })
    }
  }

  /** The user the client logged in as (USER's argument), for the transfer log lines. */
  get user(): string | undefined {
    return this.#user
  }

  /** The server's greeting has come. */
  get greeted(): boolean {
    return this.#greeted
  }

  /** A command's setup is under way (a passive request awaiting its reply, a relayed PORT): the commands behind it wait. */
  get busy(): boolean {
    return this.#blockers > 0
  }

  /** Takes one command line of the client's (see #handle); `busy` while its setup runs. */
  take(line: Buffer): void {
    const setup = this.#handle(line)
    if (setup instanceof Promise) this.#hold(setup)
  }

  /** No command is taken until `work` ends (a setup, a TLS upgrade). */
  #hold(work: Promise<void>): void {
    this.#blockers++
    work
      .catch((err: unknown) => this.#deps.onError(err))
      .finally(() => {
        this.#blockers--
        this.#deps.onReady()
      })
  }

  /**
   * Handles one command line of the client's: decided by the command policy, then forwarded
   * (as is or rewritten), answered by the proxy, or set up as a data connection. A promise when
   * the commands behind it must wait (a passive request until its reply, a relayed PORT until
   * its port is bound).
   */
  #handle(line: Buffer): void | Promise<void> {
    const command = parseCommand(line)
    this.#deps.markActivity()
    if (this.#deps.log.isLevelEnabled('debug')) this.#deps.log.debug({ cmd: logSafe(command) }, 'command')
    const { action, set } = decideCommand(
      {
        ending: this.#deps.life.phase !== 'open',
        epsvAll: this.#epsvAll,
        serverWithoutEpsv: this.#serverWithoutEpsv,
        leasePending: this.#deps.data.leasePending,
        activeMode: this.#deps.shared.config().activeMode,
        clientAddress: this.#deps.endpoints.clientAddress,
        serverFamily: this.#deps.endpoints.upstreamFamily,
        clientTls: this.#deps.shared.config().clientTls,
        clientSecure: this.tls.clientSecure,
      },
      command,
    )
    if (set?.user !== undefined) this.#user = set.user
    if (set?.quit === true) this.#deps.life.quit()
    if (set?.epsvAll === true) this.#epsvAll = true
    if (set?.prot !== undefined) this.tls.clientProt = set.prot
    switch (action.type) {
      case 'drop':
        return
      case 'forward':
        this.#forward(action.reply === 'feat' ? { type: 'feat', tls: this.#deps.shared.config().clientTls !== 'off' } : PLAIN, line)
        return
      case 'transfer': {
        const lease = this.#deps.data.takePending(command)
        this.#forward(lease === null ? PLAIN : { type: 'transfer', lease, preliminary: false }, line)
        return
      }
      case 'abort':
        this.#deps.data.cancelAll('aborted')
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
        return this.ownReply(action.text)
      case 'auth':
        return this.#tlsTalk.auth()
      case 'refuse':
        return this.#refuse(command, action.reason, action.text)
    }
  }

  /** --active-mode relay: the PORT/EPRT the proxy sends the server, once its pool port is bound. */
  async #relayActive(command: Command, target: ActiveTarget): Promise<void> {
    const setup = await this.#deps.data.relayActive(command, target)
    if (setup === null) return
    if ('reply' in setup) return this.ownReply(setup.reply)
    this.#forward({ type: 'relayed', lease: setup.lease }, setup.send)
  }

  #forward(expect: Expect, bytes: Buffer): Slot {
    this.#refusals.forwarded()
    const slot = this.#deps.replies.awaitReply(expect)
    this.#deps.toServer().write(bytes)
    return slot
  }

  /** Answers a command without the server, counted by reason. */
  #refuse(command: Command, reason: CommandRefusal, text: string): void {
    const tooMany = this.#refusals.refused(command, reason, text)
    this.ownReply(text)
    if (tooMany) {
      const n = this.#refusals.inRow
      this.#deps.log.warn({ refused: n }, 'client sent only commands the proxy refuses; closing')
      this.#deps.closeWith(`421 Too many refused commands (${n} in a row); closing.\r\n`, 'too many refused commands')
    }
  }

  /** A reply of the proxy's own, behind the replies to every earlier command. */
  ownReply(text: string): void {
    this.#deps.replies.own(LOCAL, replyBytes(text))
  }

  /** A reply is complete: what the client gets for it, by the command it answers. */
  onReply(slot: Slot, code: number, lines: readonly Buffer[]): void {
    const e = slot.expect
    this.#deps.log.trace({ code }, 'reply')
    if (e.type === 'internal' || e.type === 'auth') {
      // The proxy's own commands toward the server (AUTH, PBSZ, PROT): their replies are the
      // proxy's; a preliminary one answers nothing yet.
      if (code < 200) return
      if (e.type === 'auth') return this.#tlsTalk.serverAuthReply(slot, code)
      e.onReply(code)
      return this.#deps.replies.finish(slot)
    }
    if (e.type === 'greeting' && code >= 200 && this.#serverTlsFirst !== null) {
      // --upstream-tls required: the server's TLS goes on right after its greeting (which the
      // client may already have); the client's commands wait for it (#serverTlsFirst holds
      // them from the session's start).
      this.#greeted = true
      const secured = code === 220 ? this.#tlsTalk.secureServerFirst() : this.#tlsTalk.refuseGreeting(code)
      void secured.then(this.#serverTlsFirst)
      return this.#deps.replies.later(slot, async () => ((await secured) ? lines : []), lines)
    }
    if (code < 200 && e.type !== 'unsolicited') {
      // RFC 959 4.2: 1yz replies are preliminary; the command is answered by the next final one.
      if (e.type === 'transfer') e.preliminary = true
      return this.#deps.replies.pass(slot, lines)
    }
    if (e.type === 'greeting') this.#greeted = true
    if (code === 227 || code === 229) {
      return this.#deps.replies.later(slot, () => this.#deps.data.passiveReply(lines, code, e.type === 'passive' ? e : null), lines)
    }
    if (e.type === 'passive' && e.form === 229 && !e.retried && (code === 500 || code === 502)) {
      // A server without EPSV (500: not understood, 502: not implemented): ask it with PASV and
      // answer the client's EPSV with a 229 all the same. Other refusals (530, 550) pass on.
      this.#serverWithoutEpsv = true
      e.retried = true
      this.#deps.log.info({ code }, 'server refused EPSV; asking with PASV')
      this.#deps.replies.awaitAgain(slot)
      return this.#deps.toServer().write(Buffer.from('PASV\r\n'))
    }
    if (e.type === 'transfer' && code < 300) {
      // The 226 is held until the client's leg has every byte; the lease ends once it is out.
      e.lease.transferSucceeded()
      slot.onSent = () => e.lease.replyPassed()
      return this.#deps.replies.later(slot, () => this.#deps.data.finalReply(e.lease, lines), lines)
    }
    if (e.type === 'passive' && e.form === 'active' && code >= 400) {
      // The server refused the passive request made for the client's PORT/EPRT.
      return this.#deps.replies.finish(slot, [Buffer.from(`425 Can't open data connection: the FTP server refused passive mode (${code}).\r\n`)])
    }
    if (e.type === 'relayed' && code >= 400) e.lease.cancel('refused')
    if (e.type === 'transfer') {
      // The server refused the transfer command, or reported a failed transfer.
      if (e.preliminary) e.lease.fail('reset')
      else e.lease.cancel('refused')
    }
    this.#deps.replies.finish(slot, lines)
  }
}

const LOCAL: Expect = Object.freeze({ type: 'local' })
const PLAIN: Expect = Object.freeze({ type: 'plain' })

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
