// One client <-> server control session: relays commands and replies, rewrites passive replies,
// and owns the session's data leases. Built over plain Duplex streams so that both sides can be
// swapped for TLS sockets after AUTH TLS.

import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import type { Config } from '../config-types.js'
import { LineTooLongError, ProxyError } from '../errors.js'
import { addressClass, dataCandidates, isIPv4, normalizeAddress } from '../net/address-policy.js'
import type { PortLease, PortPool } from '../net/port-pool.js'
import type { CommandRefusal, FailureReason, LeaseOutcome, ProxyMetrics } from '../observe/metrics.js'
import {
  isAborWithoutLf,
  logSafe,
  parseCommand,
  parseEprt,
  parsePort,
  TRANSFER_VERBS,
  transferDirection,
  type ActiveTarget,
  type Command,
} from '../protocol/commands.js'
import { LineFramer } from '../protocol/line-framer.js'
import { format227, format229, parsePassiveReply, replyText, ReplyAssembler, type Reply } from '../protocol/replies.js'
import type { Socket } from 'node:net'
import { connectTo, DataLease, DialError, dialFirst } from './data-relay.js'
import { hintFor } from './hints.js'

/** What the proxy shares with every session. */
export interface SessionContext {
  readonly config: () => Config
  readonly pool: PortPool
  readonly metrics: ProxyMetrics
  /** Per upstream: the data address that answered last (tried first next time). */
  readonly dataMemory: { lastAnswered: string | null }
  readonly nextLeaseId: () => number
}

/** The addresses of one session, normalised (no `::ffff:` prefix). */
export interface SessionEndpoints {
  readonly clientAddress: string
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

interface PendingCommand {
  readonly command: Command
  /** The lease a transfer command uses, and whether the server has sent its 1xx. */
  lease?: DataLease
  preliminary?: boolean
  /**
   * For a data-connection setup: what the client gets back. 227 after PASV, 229 after EPSV
   * (whatever the server answered), or 'active' after PORT/EPRT turned into a passive request.
   */
  form?: 227 | 229 | 'active'
  /** For PORT/EPRT: where the client listens. */
  active?: ActiveTarget
  /** An EPSV already retried as PASV toward a server without EPSV. */
  retried?: boolean
  /** A reply the proxy gives itself; sent when every earlier command has its reply. */
  local?: Buffer
  /** For PORT/EPRT in relay mode: the lease the server connects to. */
  relayed?: DataLease
}

// Replies queued while a passive reply waits for a port or a connect; past this, the server leg
// is not read until the client catches up.
const MAX_QUEUED_REPLIES = 64
// A reply (multi-line included) longer than this is an error, like a long line.
const MAX_REPLY_BYTES = 64 * 1024
// Commands sent but not answered; past this, the client leg is not read.
const MAX_PENDING_COMMANDS = 64
const END = Symbol('end')

export class ControlSession {
  readonly id: string
  readonly #client: Duplex
  readonly #upstream: Duplex
  readonly #ep: SessionEndpoints
  readonly #ctx: SessionContext
  readonly #log: Logger
  readonly #clientFramer: LineFramer
  readonly #upstreamFramer: LineFramer
  readonly #assembler = new ReplyAssembler(MAX_REPLY_BYTES)
  readonly #replies: Array<Reply | typeof END> = []
  readonly #pending: PendingCommand[] = []
  readonly #leases = new Set<DataLease>()
  #current: DataLease | null = null
  #draining = false
  #endQueued = false
  readonly #commands: Buffer[] = []
  #commandBusy = false
  #greeted = false
  #epsvAll = false
  #serverNoEpsv = false
  #user: string | undefined
  #idleTimer: NodeJS.Timeout | null = null
  #greetTimer: NodeJS.Timeout | null = null
  #closedLegs = 0
  #closed = false
  /** closeWith() was called: the final reply is on its way. */
  #closing = false
  #closeReason: string | null = null
  #quit = false
  readonly #openedAt = performance.now()
  readonly #done: Promise<void>
  #resolveDone!: () => void

  constructor(id: string, client: Duplex, upstream: Duplex, ep: SessionEndpoints, ctx: SessionContext, log: Logger) {
    this.id = id
    this.#client = client
    this.#upstream = upstream
    this.#ep = ep
    this.#ctx = ctx
    this.#log = log
    const maxLineBytes = ctx.config().maxLineBytes
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
    for (const lease of this.#leases) if (lease.claimed) return true
    return this.#pending.some((p) => p.lease !== undefined && !p.lease.ended)
  }

  start(): void {
    const client = this.#client
    const upstream = this.#upstream
    client.on('data', (chunk: Buffer) => this.#onClientData(chunk))
    upstream.on('data', (chunk: Buffer) => this.#onUpstreamData(chunk))
    // A FIN from the client is passed on; the server's last replies still reach the client.
    client.on('end', () => upstream.end())
    upstream.on('end', () => {
      // The server left first (after a QUIT, that is the client's doing).
      this.#closeReason ??= this.#quit ? 'client quit' : 'server closed the connection'
      this.#queueEnd()
    })
    client.on('error', (err) => this.#onError('client', err))
    upstream.on('error', (err) => this.#onError('upstream', err))
    client.on('close', () => this.#onLegClosed('client'))
    upstream.on('close', () => this.#onLegClosed('upstream'))
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
    if (this.#closed) return
    this.#closeReason = reason
    this.#client.destroy()
    this.#upstream.destroy()
  }

  /** Sends the client a final reply, then closes the session (idle timeout, shutdown, bad input). */
  closeWith(reply: string, reason: string): void {
    if (this.#closed || this.#closing) return
    this.#closing = true
    this.#closeReason = reason
    // Closed once flushed: a client that never closes its side must not hold the session.
    this.#client.end(reply, () => this.#client.destroy())
    this.#upstream.destroy()
  }

  // ---- client -> server -------------------------------------------------------------------

  #onClientData(chunk: Buffer): void {
    // Once the session is ending (server gone, or a final reply sent), client bytes are dropped.
    if (this.#endQueued || this.#closing) return
    let lines: Buffer[]
    try {
      lines = this.#clientFramer.push(chunk)
    } catch (err) {
      if (!(err instanceof LineTooLongError)) throw err
      this.#commands.push(...err.linesBefore)
      this.#pumpCommands()
      this.#log.warn({ limit: err.limit }, 'client sent a command line over the limit; closing')
      this.closeWith(`500 Command line too long (limit ${err.limit} bytes).\r\n`, 'client line too long')
      return
    }
    this.#commands.push(...lines)
    this.#pumpCommands()
  }

  // Commands are handled one at a time, in order; one whose setup is asynchronous (a relayed
  // PORT needs a pool port first) holds the ones behind it, and the client leg is not read.
  #pumpCommands(): void {
    while (this.#commands.length > 0 && !this.#commandBusy && !this.#closed) {
      const done = this.#onCommand(this.#commands.shift() as Buffer)
      if (done instanceof Promise) {
        this.#commandBusy = true
        this.#client.pause()
        void done.catch((err: unknown) => this.#internalError(err)).finally(() => {
          this.#commandBusy = false
          this.#resumeClient()
          this.#pumpCommands()
        })
      }
    }
    if (this.#pending.length >= MAX_PENDING_COMMANDS) this.#client.pause()
  }

  #onCommand(line: Buffer): void | Promise<void> {
    const command = parseCommand(line)
    this.#armIdle()
    this.#log.debug({ cmd: logSafe(command) }, 'command')
    const entry: PendingCommand = { command }
    const config = this.#ctx.config()
    switch (command.verb) {
      case 'USER':
        this.#user = command.arg
        break
      case 'QUIT':
        this.#quit = true
        break
      case 'ABOR': {
        // RFC 959 4.1.3: ABOR ends the transfer in progress. A server that reads no urgent data
        // notices only when its data connection closes, so the proxy closes both legs first,
        // and sends a clean ABOR whatever Telnet bytes or lost LF came with it.
        for (const p of this.#pending) if (p.lease !== undefined) p.lease.cancel('aborted')
        this.#current?.cancel('aborted')
        this.#forward(entry, Buffer.from('ABOR\r\n'))
        return
      }
      case 'LPSV':
      case 'LPRT':
        // RFC 1639 long addresses: refused, so clients fall back to what the proxy rewrites.
        return this.#refuse(entry, 'unsupported', `502 ${command.verb} is not supported by this proxy; use EPSV or PASV.`)
      case 'PASV':
        if (this.#epsvAll) return this.#refuse(entry, 'epsv_all', '503 PASV refused: EPSV ALL was sent, only EPSV is allowed (RFC 2428).')
        entry.form = 227
        this.#forward(entry, line)
        return
      case 'EPSV':
        if (command.arg.trim().toUpperCase() === 'ALL') {
          // RFC 2428 4: after EPSV ALL the client uses EPSV only; the proxy enforces that on
          // the client side and stays free to drive the server with PASV if it must.
          this.#epsvAll = true
          this.#local(entry, '200 EPSV ALL command successful.')
          return
        }
        entry.form = 229
        // The protocol argument (1 or 2) names the client's side; toward the server the proxy
        // uses its own control connection's family, or PASV for a server without EPSV.
        this.#forward(entry, Buffer.from(this.#serverNoEpsv ? 'PASV\r\n' : 'EPSV\r\n'))
        return
      case 'PORT':
      case 'EPRT': {
        if (this.#epsvAll) return this.#refuse(entry, 'epsv_all', `503 ${command.verb} refused: EPSV ALL was sent, only EPSV is allowed (RFC 2428).`)
        let target = command.verb === 'PORT' ? parsePort(command.arg) : parseEprt(command.arg)
        if (target === null) return this.#refuse(entry, 'malformed', `501 Syntax error in ${command.verb} parameters.`)
        // lftp on loopback sends `EPRT |2|::|port|`: an unspecified address can only mean the
        // client itself, and the proxy dials nothing else.
        if (addressClass(target.host) === 'unspecified') target = { ...target, host: this.#ep.clientAddress }
        // RFC 2577 4: a data connection only to the control client's own address, never to a
        // privileged port (the FTP bounce attack).
        if (normalizeAddress(target.host) !== this.#ep.clientAddress || target.port < 1024) {
          return this.#refuse(entry, 'bounce', `504 ${command.verb} refused: the data address must be your own address and a port from 1024 up.`)
        }
        if (config.activeMode === 'deny') {
          return this.#refuse(entry, 'unsupported', `502 Active mode is disabled on this proxy; use PASV or EPSV.`)
        }
        if (config.activeMode === 'relay') return this.#relayActive(entry, target)
        entry.form = 'active'
        entry.active = target
        // Active mode toward the client, passive toward the server: the proxy dials both.
        this.#forward(entry, Buffer.from(this.#serverNoEpsv || this.#ep.upstreamFamily === 4 ? 'PASV\r\n' : 'EPSV\r\n'))
        return
      }
      default:
        if (TRANSFER_VERBS.has(command.verb) && this.#current !== null && !this.#current.ended) {
          entry.lease = this.#current
          entry.lease.attach(command)
          this.#current = null
        }
    }
    this.#forward(entry, line)
  }

  /**
   * `--active-mode relay`: a pool port on the server-facing side, the server told to connect to
   * it with PORT/EPRT naming the proxy, and the client dialled once the server has connected.
   */
  async #relayActive(entry: PendingCommand, target: ActiveTarget): Promise<void> {
    const config = this.#ctx.config()
    let portLease: PortLease
    try {
      portLease = await this.#ctx.pool.lease(this.#ep.upstreamLocalAddress)
    } catch (err) {
      if (!(err instanceof ProxyError && err.code === 'POOL_EXHAUSTED')) throw err
      this.#ctx.metrics.leaseEnded({ result: 'failed', reason: 'pool_exhausted' })
      this.#log.warn({ reason: 'pool_exhausted', hint: hintFor('pool_exhausted', null, null, this.#ep.upstreamAddress) }, 'data connection failed')
      return this.#local(entry, "425 Can't open data connection: every port of the proxy's pool is in use.")
    }
    if (this.#closed) return portLease.release()
    if (this.#current !== null && !this.#current.claimed) this.#current.cancel('replaced')
    const lease = new DataLease({
      id: this.#ctx.nextLeaseId(),
      port: portLease,
      upstream: null,
      clientAddress: this.#ep.clientAddress,
      relay: {
        serverAddress: this.#ep.upstreamAddress,
        client: { host: target.host, port: target.port, localAddress: this.#ep.localAddress, timeoutMs: config.connectTimeoutMs },
      },
      acceptTimeoutMs: config.dataAcceptTimeoutMs,
      metrics: this.#ctx.metrics,
      log: this.#log,
      onEnd: (l, outcome) => this.#onLeaseEnd(l, outcome),
    })
    this.#leases.add(lease)
    this.#current = lease
    entry.relayed = lease
    const own = this.#ep.upstreamLocalAddress
    const toServer =
      this.#ep.upstreamFamily === 4
        ? `PORT ${own.split('.').join(',')},${lease.port >> 8},${lease.port & 255}`
        : `EPRT |2|${own}|${lease.port}|`
    this.#log.info({ lease: lease.id, toServer, activeTarget: `${target.host}:${target.port}` }, 'active mode relayed')
    this.#forward(entry, Buffer.from(`${toServer}\r\n`))
  }

  #forward(entry: PendingCommand, bytes: Buffer): void {
    this.#pending.push(entry)
    this.#writeUpstream(bytes)
  }

  /** Answers a command without the server, counted by reason. */
  #refuse(entry: PendingCommand, reason: CommandRefusal, text: string): void {
    this.#ctx.metrics.commandsRefused.inc({ reason })
    this.#log.info({ cmd: logSafe(entry.command), reason, reply: text }, 'command refused')
    this.#local(entry, text)
  }

  /** Queues a reply of the proxy's own behind the replies to every earlier command. */
  #local(entry: PendingCommand, text: string): void {
    entry.local = Buffer.from(`${text}\r\n`)
    this.#pending.push(entry)
    if (this.#greeted && !this.#draining && this.#replies.length === 0) this.#flushLocal()
  }

  #flushLocal(): void {
    for (let head = this.#pending[0]; head?.local !== undefined; head = this.#pending[0]) {
      this.#pending.shift()
      this.#client.write(head.local)
    }
  }

  #writeUpstream(bytes: Buffer): void {
    if (!this.#upstream.write(bytes)) {
      this.#client.pause()
      this.#upstream.once('drain', () => this.#resumeClient())
    }
  }

  #resumeClient(): void {
    if (this.#pending.length < MAX_PENDING_COMMANDS && this.#upstream.writableNeedDrain === false) this.#client.resume()
  }

  // ---- server -> client -------------------------------------------------------------------

  #onUpstreamData(chunk: Buffer): void {
    try {
      for (const line of this.#upstreamFramer.push(chunk)) {
        const reply = this.#assembler.push(line)
        if (reply !== null) this.#replies.push(reply)
      }
    } catch (err) {
      if (!(err instanceof LineTooLongError)) throw err
      for (const line of err.linesBefore) {
        const reply = this.#assembler.push(line)
        if (reply !== null) this.#replies.push(reply)
      }
      this.#log.warn({ limit: err.limit }, 'server sent a reply over the limit; closing')
      this.#closeReason ??= 'server reply too long'
      this.#replies.push({ code: 421, lines: [Buffer.from(`421 The FTP server sent a reply longer than ${err.limit} bytes; closing.\r\n`)] })
      this.#queueEnd()
      this.#upstream.destroy()
    }
    if (this.#replies.length >= MAX_QUEUED_REPLIES) this.#upstream.pause()
    void this.#drainReplies()
  }

  /** After the server's last reply has reached the client, the client leg ends too. */
  #queueEnd(): void {
    if (this.#endQueued) return
    this.#endQueued = true
    this.#replies.push(END)
    void this.#drainReplies()
  }

  async #drainReplies(): Promise<void> {
    if (this.#draining) return
    this.#draining = true
    try {
      while (this.#replies.length > 0 && !this.#closed) {
        const reply = this.#replies.shift() as Reply | typeof END
        if (reply === END) {
          // The server is gone and its last reply is out: the session ends, whether or not the
          // client closes its side.
          this.#client.end(() => this.#client.destroy())
          // The server is gone: read (and drop) whatever the client still sends, so its FIN is
          // seen even when the client leg was paused for too many unanswered commands.
          this.#client.resume()
          this.#replies.length = 0
          break
        }
        const out = this.#handleReply(reply)
        let bytes: readonly Buffer[]
        try {
          bytes = out instanceof Promise ? await out : out
        } catch (err) {
          this.#internalError(err)
          break
        }
        if (this.#closed) break
        for (const b of bytes) if (!this.#client.write(b)) await waitDrain(this.#client)
        if (this.#greeted) this.#flushLocal()
      }
    } finally {
      this.#draining = false
    }
    if (!this.#closed && this.#replies.length < MAX_QUEUED_REPLIES) this.#upstream.resume()
  }

  /** What the client gets for one server reply: the reply itself unless rewritten. */
  #handleReply(reply: Reply): readonly Buffer[] | Promise<readonly Buffer[]> {
    const code = reply.code
    if (code === null) return reply.lines
    if (!this.#greeted) {
      // RFC 959 5.4: the greeting (120 then 220, or 421) answers no command, even when the
      // client has already sent some.
      if (code >= 200) this.#greeted = true
      return reply.lines
    }
    // RFC 959 4.2: 1yz replies are preliminary; the command is answered by the next final one.
    const entry = code < 200 ? this.#pending[0] : this.#pending.shift()
    if (code >= 200 && this.#pending.length < MAX_PENDING_COMMANDS) this.#resumeClient()
    this.#log.trace({ code }, 'reply')
    if (code === 227 || code === 229) return this.#rewritePassive(reply, code, entry)
    if (entry?.form === 229 && !entry.retried && code >= 500 && this.#pending.length === 0) {
      // A server without EPSV (500/502): ask it with PASV and answer the client's EPSV with a
      // 229 all the same. Only when nothing else is in flight, so replies keep their order.
      this.#serverNoEpsv = true
      entry.retried = true
      this.#log.info({ code }, 'server refused EPSV; asking with PASV')
      this.#forward(entry, Buffer.from('PASV\r\n'))
      return []
    }
    if (entry?.relayed !== undefined && code >= 400) {
      // The server refused the relayed PORT/EPRT: the client gets its refusal as is.
      entry.relayed.cancel('refused')
      return reply.lines
    }
    if (entry?.form === 'active' && code >= 400) {
      // The server refused the passive request made for the client's PORT/EPRT.
      return [Buffer.from(`425 Can't open data connection: the FTP server refused passive mode (${code}).\r\n`)]
    }
    const lease = entry?.lease
    if (lease === undefined) return reply.lines
    if (code < 200) {
      entry!.preliminary = true
      return reply.lines
    }
    if (code < 300) {
      lease.transferSucceeded()
      return this.#afterDrain(lease, reply)
    }
    // The server refused the transfer command, or reported a failed transfer.
    if (entry!.preliminary === true) lease.fail('reset')
    else lease.cancel('refused')
    return reply.lines
  }

  /**
   * The server's 226 is held until the client's leg has been handed every byte: the proxy
   * connected to the server early, so the server can finish before the client has its data.
   */
  async #afterDrain(lease: DataLease, reply: Reply): Promise<readonly Buffer[]> {
    this.#upstream.pause()
    const result = await lease.drained()
    if (result === 'ok') return reply.lines
    if (result === 'not_connected') {
      return [Buffer.from('425 Can\'t open data connection: the client did not connect to the passive port.\r\n')]
    }
    return [Buffer.from('426 Connection closed; transfer aborted: the data connection to the client failed.\r\n')]
  }

  async #rewritePassive(reply: Reply, code: 227 | 229, entry: PendingCommand | undefined): Promise<readonly Buffer[]> {
    const config = this.#ctx.config()
    const metrics = this.#ctx.metrics
    // Answer in the form the client asked for: curl, ftplib and basic-ftp reject a 227 after
    // EPSV and a 229 after PASV, whatever the server sent.
    const form: 227 | 229 | 'active' = entry?.form ?? code
    const serverText = replyText(reply)
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
    const fail = (reason: FailureReason, text: string, extra: object): readonly Buffer[] => {
      metrics.leaseEnded({ result: 'failed', reason })
      this.#log.warn(
        {
          reason,
          fromServer: serverText,
          advertised: endpoint.host === null ? `port ${endpoint.port}` : `${endpoint.host}:${endpoint.port}`,
          advertisedClass,
          hint: hintFor(reason, endpoint.host, advertisedClass, this.#ep.upstreamAddress),
          ...extra,
        },
        'data connection failed',
      )
      return [Buffer.from(`425 Can't open data connection: ${text}.\r\n`)]
    }
    // Active mode toward the client needs no pool port: the proxy dials the client.
    let portLease: PortLease | null = null
    if (form !== 'active') {
      try {
        portLease = await this.#ctx.pool.lease(this.#ep.localAddress)
      } catch (err) {
        if (err instanceof ProxyError && err.code === 'POOL_EXHAUSTED') {
          return fail('pool_exhausted', 'every passive port of the proxy is in use', {})
        }
        throw err
      }
    }
    if (this.#closed) {
      portLease?.release()
      return []
    }
    const candidates = dataCandidates(config.upstreamDataAddress, endpoint.host, this.#ep.upstreamAddress, this.#ctx.dataMemory.lastAnswered)
    let dialled
    try {
      dialled = await dialFirst(candidates, endpoint.port, this.#ep.upstreamLocalAddress, config.connectTimeoutMs)
    } catch (err) {
      portLease?.release()
      if (!(err instanceof DialError)) throw err
      const tried = err.attempts.map((a) => `${a.host}:${a.port} ${a.error ?? ''}`.trim()).join(', ')
      return fail(err.reason, `the FTP server's data port did not answer (${tried})`, { targets: err.attempts })
    }
    this.#ctx.dataMemory.lastAnswered = dialled.candidate.host
    metrics.dataConnectSeconds.observe((dialled.attempts[dialled.attempts.length - 1]?.ms ?? 0) / 1000)
    let clientLeg: Socket | null = null
    if (form === 'active' && entry?.active !== undefined) {
      const target = entry.active
      try {
        clientLeg = await connectTo(target.host, target.port, this.#ep.localAddress, config.connectTimeoutMs)
      } catch (err) {
        dialled.socket.destroy()
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
        return fail('client_timeout', `the proxy cannot connect to your data address ${target.host}:${target.port} (${code})`, { activeTarget: `${target.host}:${target.port}`, error: code })
      }
    }
    if (this.#closed) {
      dialled.socket.destroy()
      clientLeg?.destroy()
      portLease?.release()
      return []
    }
    const lease = new DataLease({
      id: this.#ctx.nextLeaseId(),
      port: portLease,
      upstream: dialled.socket,
      clientAddress: this.#ep.clientAddress,
      acceptTimeoutMs: config.dataAcceptTimeoutMs,
      metrics,
      log: this.#log,
      onEnd: (l, outcome) => this.#onLeaseEnd(l, outcome),
    })
    this.#leases.add(lease)
    this.#current = lease
    let out: string
    if (clientLeg !== null) {
      lease.startRelay(clientLeg)
      out = `200 ${entry?.command.verb ?? 'PORT'} command successful.\r\n`
    } else {
      out = form === 227 ? format227(advertise, lease.port) : format229(lease.port)
      metrics.passiveReplies.inc({ reply: String(form) })
    }
    this.#log.info(
      {
        lease: lease.id,
        fromServer: serverText,
        advertised: endpoint.host === null ? `port ${endpoint.port}` : `${endpoint.host}:${endpoint.port}`,
        advertisedClass,
        dialled: `${dialled.candidate.host}:${endpoint.port}`,
        targets: dialled.attempts,
        toClient: out.trimEnd(),
        ...(entry?.active === undefined ? {} : { activeTarget: `${entry.active.host}:${entry.active.port}` }),
      },
      'passive reply rewritten',
    )
    return [Buffer.from(out)]
  }

  #onLeaseEnd(lease: DataLease, outcome: LeaseOutcome): void {
    this.#leases.delete(lease)
    if (this.#current === lease) this.#current = null
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

  /**
   * An error no peer caused and no code path expects (a bind refused by the system, say): the
   * session ends with a 421 and a log line; the proxy and its other sessions go on.
   */
  #internalError(err: unknown): void {
    this.#log.error({ err }, 'internal error; closing the session')
    this.closeWith('421 Service not available: internal error in the proxy; closing.\r\n', 'internal error')
  }

  #armIdle(): void {
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer)
    if (this.#closed) return
    const ms = this.#ctx.config().idleTimeoutMs
    this.#idleTimer = setTimeout(() => {
      // The idle timeout counts only while no transfer runs: a long transfer keeps the control
      // connection silent for as long as it takes.
      if (this.transferActive) return this.#armIdle()
      this.#log.info({ idleSeconds: ms / 1000 }, 'control connection idle; closing')
      this.closeWith(`421 Idle timeout (${ms / 1000} s): closing control connection.\r\n`, 'idle timeout')
    }, ms)
    this.#idleTimer.unref()
  }

  #onError(leg: 'client' | 'upstream', err: Error): void {
    this.#log.debug({ leg, error: err.message }, 'control connection error')
    if (leg === 'upstream') this.#closeReason ??= `upstream error: ${(err as NodeJS.ErrnoException).code ?? err.message}`
  }

  #onLegClosed(leg: 'client' | 'upstream'): void {
    this.#closedLegs++
    if (this.#closedLegs === 1 && this.#closeReason === null) {
      this.#closeReason = this.#quit ? 'client quit' : leg === 'upstream' ? 'server closed the connection' : 'client closed the connection'
    }
    if (leg === 'client') {
      // Nothing more can reach the client: the server leg goes too.
      this.#upstream.destroy()
    } else {
      this.#queueEnd()
    }
    if (this.#closedLegs < 2) return
    this.#closed = true
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer)
    if (this.#greetTimer !== null) clearTimeout(this.#greetTimer)
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

function waitDrain(stream: Duplex): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done)
      stream.off('close', done)
      resolve()
    }
    stream.on('drain', done)
    stream.on('close', done)
  })
}
