// Data connections of one session: a 227/229 from the server, or a PORT/EPRT from the client, in;
// a lease (src/proxy/transfer.ts) and the reply the client gets, out. It owns the session's
// leases, their caps (per session and per client address), and the one passive lease waiting
// for its transfer command.

import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import { DialError, ProxyError, type DialAttempt } from '../errors.js'
import { addressClass, dataTargets, isIPv4, policyRefusal, type DataRefusal } from '../net/address-policy.js'
import { connectTo, dialFirst } from '../net/dial.js'
import type { PortLease } from '../net/port-pool.js'
import { logSafe, transferDirection, type ActiveTarget, type Command } from '../protocol/commands.js'
import { lineText } from '../protocol/line-framer.js'
import type { DataFailureReport } from '../observe/status.js'
import { format227, format229, parsePassiveReply } from '../protocol/replies.js'
import { hintFor } from './hints.js'
import type { DataTls } from './data-tls.js'
import { LeaseCaps } from './lease-caps.js'
import type { FailureReason, LeaseOutcome } from './outcomes.js'
import type { PassiveRequest } from './reply-order.js'
import type { SessionContext, SessionEndpoints } from './session-context.js'
import { DataLease, type DataLeaseOptions } from './transfer.js'

export interface DataSetupsOptions {
  readonly shared: SessionContext
  readonly endpoints: SessionEndpoints
  readonly log: Logger
  /** The session has closed: a setup that finishes now is abandoned. */
  readonly isClosed: () => boolean
  /** The user the session logged in as, for the transfer log line. */
  readonly user: () => string | undefined
  /** A lease ended (or its last bytes reached the client): the session's idle clock restarts. */
  readonly onLeaseEnd: () => void
  /** How a data connection set up now is protected (FTPS PROT P on either side). */
  readonly dataTls: () => DataTls | undefined
}

export class DataSetups {
  readonly #opts: DataSetupsOptions
  readonly #leases = new Set<DataLease>()
  /** The passive lease waiting for its transfer command (replaced by the next passive reply). */
  #pending: DataLease | null = null
  readonly #caps: LeaseCaps
  /** Finished transfers whose client leg still carries their last bytes (see DataLease.lingering). */
  #lingering = 0

  constructor(opts: DataSetupsOptions) {
    this.#opts = opts
    this.#caps = new LeaseCaps(opts.shared, opts.endpoints)
  }

  /** Whether a lease waits for a transfer command. */
  get leasePending(): boolean {
    return this.#pending !== null && !this.#pending.ended
  }

  /** Whether a transfer runs: a lease in use, or a finished one whose last bytes are on their way. */
  get transferRunning(): boolean {
    if (this.#lingering > 0) return true
    for (const lease of this.#leases) if (lease.transferring) return true
    return false
  }

  /** The pending lease, for the transfer command that uses it. */
  takePending(command: Command): DataLease | null {
    const lease = this.#pending
    if (lease === null || lease.ended) return null
    lease.attach(command)
    this.#pending = null
    return lease
  }

  /** Cancels every lease (ABOR, the session's end); their legs are reset. */
  cancelAll(reason: 'aborted' | 'closed'): void {
    for (const lease of [...this.#leases]) lease.cancel(reason)
  }

  /** Resolves once every lease has released its legs and port. */
  settled(): Promise<void> {
    return Promise.all([...this.#leases].map((l) => l.drained())).then(() => undefined)
  }

  /**
   * `--active-mode relay`: a pool port on the server-facing side, the server told to connect to
   * it with PORT/EPRT naming the proxy, and the client dialled once the server has connected.
   */
  async relayActive(command: Command, target: ActiveTarget): Promise<{ readonly lease: DataLease; readonly send: Buffer } | { readonly reply: string } | null> {
    const config = this.#opts.shared.config()
    if (this.#pending !== null && !this.#pending.claimed) this.#pending.cancel('replaced')
    const limited = this.#caps.take()
    if (limited !== null) {
      this.#failed('lease_limit', {})
      return { reply: `425 Can't open data connection: ${limited}.` }
    }
    let portLease: PortLease
    try {
      portLease = await this.#opts.shared.pool.lease(this.#opts.endpoints.upstreamLocalAddress)
    } catch (err) {
      this.#caps.give()
      if (!(err instanceof ProxyError && err.code === 'POOL_EXHAUSTED')) throw err
      this.#failed('pool_exhausted', {})
      return { reply: "425 Can't open data connection: every port of the proxy's pool is in use." }
    }
    if (this.#opts.isClosed()) {
      this.#caps.give()
      portLease.release()
      return null
    }
    const lease = this.#newLease(portLease, null, {
      serverAddress: this.#opts.endpoints.upstreamAddress,
      client: { host: target.host, port: target.port, localAddress: this.#opts.endpoints.localAddress, timeoutMs: config.connectTimeoutMs },
    })
    const own = this.#opts.endpoints.upstreamLocalAddress
    const toServer =
      this.#opts.endpoints.upstreamFamily === 4
        ? `PORT ${own.split('.').join(',')},${lease.port >> 8},${lease.port & 255}`
        : `EPRT |2|${own}|${lease.port}|`
    this.#opts.log.info({ lease: lease.id, cmd: logSafe(command), toServer, activeTarget: `${target.host}:${target.port}` }, 'active mode relayed')
    return { lease, send: Buffer.from(`${toServer}\r\n`) }
  }

  /**
   * The server's 226 is held until the client's leg has been handed every byte: the proxy
   * connected to the server early, so the server can finish before the client has its data.
   */
  async finalReply(lease: DataLease, lines: readonly Buffer[]): Promise<readonly Buffer[]> {
    const result = await lease.drained()
    if (result === 'ok') return lines
    if (result === 'not_connected') {
      return [Buffer.from("425 Can't open data connection: the client did not connect to the passive port.\r\n")]
    }
    return [Buffer.from('426 Connection closed; transfer aborted: the data connection to the client failed.\r\n')]
  }

  /** Counts and logs a data connection that failed before it had a lease. */
  #failed(reason: FailureReason, fields: object): void {
    this.#opts.shared.metrics.leaseEnded({ result: 'failed', reason })
    const hint = hintFor(reason, null, null, this.#opts.endpoints.upstreamAddress)
    this.#opts.log.warn({ reason, hint, ...fields }, 'data connection failed')
    this.#noteFailure({ reason, hint })
  }

  /** Feeds the status page's list of failures (observe/status.ts); the log line stays the record. */
  #noteFailure(report: Omit<DataFailureReport, 'session' | 'client'>): void {
    const sid = this.#opts.log.bindings()['sid']
    this.#opts.shared.status?.dataFailure({
      user: this.#opts.user(),
      ...report,
      session: typeof sid === 'string' ? sid : '',
      client: this.#opts.endpoints.clientAddress,
    })
  }

  /** `tls`: how its legs are protected, as decided when its server leg was dialled (now if not given). */
  #newLease(port: PortLease | null, upstream: Socket | null, relay?: DataLeaseOptions['relay'], tls = this.#opts.dataTls()): DataLease {
    const config = this.#opts.shared.config()
    const lease = new DataLease({
      id: this.#opts.shared.nextLeaseId(),
      port,
      upstream,
      ...(relay === undefined ? {} : { relay }),
      clientAddress: this.#opts.endpoints.clientAddress,
      acceptTimeoutMs: config.dataAcceptTimeoutMs,
      dataIdleTimeoutMs: config.dataIdleTimeoutMs,
      closeTimeoutMs: config.closeTimeoutMs,
      metrics: this.#opts.shared.metrics,
      log: this.#opts.log,
      onEnd: (l, outcome) => this.#onLeaseEnd(l, outcome),
      ...(tls === undefined ? {} : { tls }),
    })
    this.#leases.add(lease)
    this.#pending = lease
    return lease
  }

  async passiveReply(lines: readonly Buffer[], code: 227 | 229, asked: PassiveRequest | null): Promise<readonly Buffer[]> {
    const config = this.#opts.shared.config()
    const metrics = this.#opts.shared.metrics
    // The form the client asked for: curl, ftplib and basic-ftp reject a 227 after EPSV and a 229 after PASV.
    const form: 227 | 229 | 'active' = asked?.form ?? code
    const serverText = lines.map(lineText).join('\n')
    let endpoint
    try {
      endpoint = parsePassiveReply(code, serverText)
    } catch (err) {
      metrics.leaseEnded({ result: 'failed', reason: 'bad_passive_reply' })
      this.#opts.log.warn({ reason: 'bad_passive_reply', fromServer: serverText, error: (err as Error).message }, 'data connection failed')
      const hint = hintFor('bad_passive_reply', null, null, this.#opts.endpoints.upstreamAddress)
      this.#noteFailure({ reason: 'bad_passive_reply', hint, serverReply: serverText, error: (err as Error).message })
      return [Buffer.from(`425 Can't open data connection: the FTP server's passive reply is invalid (${(err as Error).message}).\r\n`)]
    }
    const advertisedClass = endpoint.host === null ? null : addressClass(endpoint.host)
    if (endpoint.host !== null && advertisedClass !== null) {
      metrics.advertised(advertisedClass, endpoint.host === this.#opts.endpoints.upstreamAddress)
      this.#opts.shared.status?.advertised({
        address: endpoint.host,
        cls: advertisedClass,
        matchesControl: endpoint.host === this.#opts.endpoints.upstreamAddress,
        control: this.#opts.endpoints.upstreamAddress,
      })
    }
    // A new passive request replaces the previous one that no client has used.
    if (this.#pending !== null && !this.#pending.claimed) this.#pending.cancel('replaced')
    this.#pending = null

    const advertise = config.advertiseAddress === 'auto' ? this.#opts.endpoints.localAddress : config.advertiseAddress
    if (form === 227 && !isIPv4(advertise)) {
      // RFC 959's 227 carries IPv4 only: an IPv6 client gets a 227 only when an IPv4 advertise
      // address is configured.
      return [Buffer.from(`425 Can't open data connection: ${advertise} cannot be named in a 227 reply; use EPSV.\r\n`)]
    }
    const advertised = endpoint.host === null ? `port ${endpoint.port}` : `${endpoint.host}:${endpoint.port}`
    const fail = (reason: FailureReason, text: string, extra: object): readonly Buffer[] => {
      metrics.leaseEnded({ result: 'failed', reason })
      const hint = hintFor(reason, endpoint.host, advertisedClass, this.#opts.endpoints.upstreamAddress)
      this.#opts.log.warn({ reason, fromServer: serverText, advertised, advertisedClass, hint, ...extra }, 'data connection failed')
      const dialled = (extra as { targets?: readonly DialAttempt[] }).targets
      this.#noteFailure({ reason, hint, serverReply: serverText, advertised, advertisedClass, dialled })
      return [Buffer.from(`425 Can't open data connection: ${text}.\r\n`)]
    }
    // What the proxy may dial: a server's reply never widens it (--upstream-data-networks).
    const targets = dataTargets(
      { mode: config.upstreamDataAddress, networks: config.upstreamDataNetworks, lowPorts: config.upstreamDataLowPorts },
      endpoint,
      this.#opts.endpoints.upstreamAddress,
      this.#opts.endpoints.upstreamLocalAddress,
      this.#opts.shared.dataMemory.lastAnswered,
      this.#opts.shared.ownAddresses(),
    )
    if (targets.candidates.length === 0) {
      return fail(
        'data_address_refused',
        `the FTP server's passive reply names ${advertised}, which this proxy does not connect to (${settingFor(targets.refused)})`,
        { refused: targets.refused },
      )
    }
    const limited = this.#caps.take()
    if (limited !== null) return fail('lease_limit', limited, {})
    // Active mode toward the client needs no pool port: the proxy dials the client.
    let portLease: PortLease | null = null
    if (form !== 'active') {
      try {
        portLease = await this.#opts.shared.pool.lease(this.#opts.endpoints.localAddress)
      } catch (err) {
        this.#caps.give()
        if (err instanceof ProxyError && err.code === 'POOL_EXHAUSTED') {
          return fail('pool_exhausted', 'every passive port of the proxy is in use', {})
        }
        throw err
      }
    }
    const abandon = (...sockets: Array<Socket | null>): readonly Buffer[] => {
      for (const s of sockets) s?.destroy()
      portLease?.release()
      this.#caps.give()
      return []
    }
    if (this.#opts.isClosed()) return abandon()
    // Decided before the dial: a server leg that stays clear reads into pooled buffers.
    const tls = this.#opts.dataTls()
    let dialled
    try {
      dialled = await dialFirst(targets.candidates, endpoint.port, this.#opts.endpoints.upstreamLocalAddress, config.connectTimeoutMs, tls?.server == null)
    } catch (err) {
      abandon()
      if (!(err instanceof DialError)) throw err
      const tried = err.attempts.map((a) => `${a.host}:${a.port} ${a.error ?? ''}`.trim()).join(', ')
      // The control peer failed and the address the server named was not dialled by policy:
      // the operator's question is whether to list that address's network.
      if (policyRefusal(targets.refused) !== null) {
        return fail(
          'data_address_refused',
          `the FTP server's data port did not answer (${tried}), and its passive reply names ${advertised}, which this proxy does not connect to (${settingFor(targets.refused)})`,
          { targets: err.attempts, refused: targets.refused },
        )
      }
      return fail(`upstream_${err.reason}`, `the FTP server's data port did not answer (${tried})`, { targets: err.attempts, refused: targets.refused })
    }
    this.#opts.shared.dataMemory.lastAnswered = dialled.candidate.host
    metrics.dataTargets.inc({ target: dialled.candidate.kind })
    metrics.dataConnectSeconds.observe((dialled.attempts[dialled.attempts.length - 1]?.ms ?? 0) / 1000)
    let clientLeg: Socket | null = null
    if (form === 'active' && asked?.active != null) {
      const target = asked.active
      try {
        clientLeg = await connectTo(target.host, target.port, this.#opts.endpoints.localAddress, config.connectTimeoutMs, tls?.client == null)
      } catch (err) {
        abandon(dialled.socket)
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
        return fail('client_timeout', `the proxy cannot connect to your data address ${target.host}:${target.port} (${code})`, {
          activeTarget: `${target.host}:${target.port}`,
          error: code,
        })
      }
    }
    if (this.#opts.isClosed()) return abandon(dialled.socket, clientLeg)
    const lease = this.#newLease(portLease, dialled.socket, undefined, tls)
    let out: string
    if (clientLeg !== null) {
      lease.startRelay(clientLeg)
      out = `200 ${asked?.verb ?? 'PORT'} command successful.\r\n`
    } else {
      out = form === 227 ? format227(advertise, lease.port) : format229(lease.port)
      metrics.passiveReplies.inc({ reply: String(form) })
    }
    this.#opts.log.info(
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
    this.#caps.give()
    if (this.#pending === lease) this.#pending = null
    const lingering = lease.lingering
    if (lingering !== null) {
      this.#lingering++
      void lingering.then(() => {
        this.#lingering--
        this.#opts.onLeaseEnd()
      })
    }
    const command = lease.command ?? undefined
    const { download, upload } = lease.bytes
    const seconds = lease.seconds
    const direction = command === undefined ? undefined : transferDirection(command.verb)
    const bytes = direction === 'upload' ? upload : download
    const fields = {
      lease: lease.id,
      user: this.#opts.user(),
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
      const hint = hintFor(outcome.reason, null, null, this.#opts.endpoints.upstreamAddress)
      this.#opts.log.warn({ ...fields, hint }, 'data connection failed')
      this.#noteFailure({ reason: outcome.reason, hint, command: command?.verb, path: command?.arg, error: lease.error?.message })
    } else {
      this.#opts.log.info(fields, 'transfer finished')
    }
    this.#opts.onLeaseEnd()
  }
}

/** The setting that would allow what the data-address policy refused, for the client's 425. */
function settingFor(refused: readonly DataRefusal[]): string {
  if (refused.some((r) => r.rule === 'low_port')) return 'see --upstream-data-low-ports'
  if (refused.some((r) => r.rule === 'mode_control' || r.rule === 'mode_advertised')) return 'see --upstream-data-address'
  return 'see --upstream-data-networks'
}
