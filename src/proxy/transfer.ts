// One data connection and its transfer (a lease): a pool port held for one client, a connection
// to the server's data endpoint made before the client is told where to connect, the relay
// between the two, its timeouts, and its one outcome (see LeaseOutcome). A transfer ends once its
// data has been relayed and its final reply has passed (basic-ftp's TransferResolver).

import type net from 'node:net'
import { normalizeAddress } from '../net/address-policy.js'
import { Deadline } from '../deadline.js'
import { connectTo } from '../net/dial.js'
import { closeAfterTail, relayLegs, resetLeg } from './data-relay.js'
import { DataMeter } from './data-meter.js'
import { protectLegs } from './data-tls.js'
import { withPooledReads } from '../net/pooled-read.js'
import type { DataLeaseOptions, DrainResult } from './lease-options.js'

export type { DataLeaseOptions, DrainResult } from './lease-options.js'
import type { Direction, FailureReason, LeaseOutcome } from './outcomes.js'
import { transferDirection, type Command } from '../protocol/commands.js'

export class DataLease {
  readonly id: number
  readonly port: number
  readonly #opts: DataLeaseOptions
  #client: net.Socket | null = null
  #upstream: net.Socket | null = null
  /** --data-accept-timeout: for the client (or the server, in relay mode), then for a transfer command. */
  #acceptDeadline: Deadline | null
  #outcome: LeaseOutcome | null = null
  /** Cancelled or failed with legs still open: the outcome once they have closed. */
  #ending: LeaseOutcome | null = null
  #direction: Direction = 'download'
  #command: Command | null = null
  #transferOk = false
  #startedAt = 0
  #closedLegs = 0
  #error: Error | null = null
  readonly #drainWaiters: Array<(r: DrainResult) => void> = []
  /** The server's success reply has been handed to the client. */
  #replyPassed = false
  #lingering: Promise<void> | null = null
  #foreignLogged = false
  readonly #meter: DataMeter

  constructor(opts: DataLeaseOptions) {
    this.id = opts.id
    this.port = opts.port?.port ?? 0
    this.#opts = opts
    this.#meter = new DataMeter(() => ({ client: this.#client, upstream: this.#upstream }), {
      metrics: opts.metrics,
      idleTimeoutMs: opts.dataIdleTimeoutMs,
      onIdle: () => {
        opts.log.info({ lease: this.id, idleSeconds: opts.dataIdleTimeoutMs / 1000 }, 'data connection idle; closing')
        this.#error ??= new Error(`no data moved for ${opts.dataIdleTimeoutMs / 1000} s`)
        this.fail('data_idle')
      },
    })
    opts.port?.accept(
      (socket) => this.#onConnection(socket),
      // A listener error after bind (rare: EMFILE on accept) ends the lease; nothing to relay.
      (err) => {
        this.#error ??= err
        this.#settle({ result: 'failed', reason: 'reset' })
      },
    )
    if (opts.upstream !== null) this.#adoptUpstream(opts.upstream)
    // Relay mode waits for the server to connect, the others for the client.
    const reason = opts.relay === undefined ? 'client_timeout' : 'upstream_timeout'
    this.#acceptDeadline = new Deadline(opts.acceptTimeoutMs, () => this.#settle({ result: 'failed', reason }))
  }

  // Until the client leg exists, the server leg is not read: its data waits in the kernel.
  #adoptUpstream(socket: net.Socket): void {
    this.#upstream = socket
    socket.on('error', (err) => {
      this.#error ??= err
    })
    // The server may have closed it while the proxy dialled the client (active mode): its
    // 'close' is gone, and would never be counted.
    if (socket.closed) {
      this.#error ??= new Error('the server closed its data connection before the relay started')
      process.nextTick(() => this.#onLegClosed())
      return
    }
    socket.setKeepAlive(true, 60_000)
    socket.on('close', () => this.#onLegClosed())
  }

  /** Whether a client connected (the lease is in use, not replaceable). */
  get claimed(): boolean {
    return this.#client !== null || (this.#opts.relay !== undefined && this.#upstream !== null)
  }

  get ended(): boolean {
    return this.#outcome !== null
  }

  get outcome(): LeaseOutcome | null {
    return this.#outcome
  }

  get bytes(): { download: number; upload: number } {
    return this.#meter.bytes
  }

  get seconds(): number {
    return this.#startedAt === 0 ? 0 : (performance.now() - this.#startedAt) / 1000
  }

  /** The transfer command that uses this lease, if one came. */
  get command(): Command | null {
    return this.#command
  }

  /** Attaches the transfer command that uses this lease (its direction, for drains and logs). */
  attach(command: Command): void {
    this.#command = command
    this.#direction = transferDirection(command.verb)
    if (this.#client !== null) this.#acceptDeadline?.cancel()
  }

  /** Whether a transfer runs on this lease: a client leg and its transfer command. */
  get transferring(): boolean {
    return this.#outcome === null && this.claimed && this.#command !== null
  }

  /**
   * Resolves when the leg that carries the data has been handed every byte: the client leg for
   * a download, the server leg for an upload; 'failed' when a leg broke, 'not_connected' when
   * the lease ended before a client connected.
   */
  drained(): Promise<DrainResult> {
    if (this.#error === null && this.#dataLegFinished()) return Promise.resolve('ok')
    if (this.#outcome !== null) return Promise.resolve(this.#drainResultAtEnd())
    return new Promise((resolve) => this.#drainWaiters.push(resolve))
  }

  /**
   * The server's final reply to the transfer command was a success. A relay whose legs closed
   * cleanly is `ok` only once this has come: a server that cuts a transfer halfway closes the
   * data connection cleanly too, then says 426.
   */
  transferSucceeded(): void {
    this.#transferOk = true
    if (this.#closedLegs >= 2 && this.#error === null && this.#ending === null) this.#settle({ result: 'ok' })
  }

  /**
   * The server's success reply has been handed to the client. With the data relayed too, the
   * transfer is over: the lease ends now and closes its legs, whether or not the client ever
   * closes its data socket (a client that keeps them would otherwise hold a pool port each).
   */
  replyPassed(): void {
    this.#replyPassed = true
    this.#completeIfDone()
  }

  #completeIfDone(): void {
    if (!this.#replyPassed || !this.#transferOk || this.#error !== null || this.#ending !== null) return
    if (this.#dataLegFinished()) this.#settle({ result: 'ok' })
  }

  /** Ends the lease now with a cancel reason (replaced, aborted, refused, closed), closing both legs. */
  cancel(reason: 'replaced' | 'aborted' | 'refused' | 'closed'): void {
    this.#endWith({ result: 'cancelled', reason })
  }

  /** Ends a relay that broke (the server reported a failed transfer while a leg was open). */
  fail(reason: FailureReason): void {
    this.#endWith({ result: 'failed', reason })
  }

  #endWith(outcome: LeaseOutcome): void {
    if (this.#outcome !== null || this.#ending !== null) return
    if (this.#client === null || this.#closedLegs >= 2) return this.#settle(outcome)
    // Settled when both legs have closed, so the port is free only once the sockets are. A
    // reset, not a FIN: a server must never take a cancelled upload as complete (ABOR included).
    this.#ending = outcome
    resetLeg(this.#client)
    if (this.#upstream !== null) resetLeg(this.#upstream)
  }

  #onConnection(socket: net.Socket): void {
    const peer = normalizeAddress(socket.remoteAddress ?? '')
    const relay = this.#opts.relay
    const expected = relay === undefined ? this.#opts.clientAddress : relay.serverAddress
    const taken = relay === undefined ? this.#client !== null : this.#upstream !== null
    if (taken || this.#outcome !== null || peer !== expected) {
      if (peer !== expected) {
        this.#opts.metrics.foreignDataConnections.inc()
        // One warning per lease: whoever reaches the port must not set the log volume.
        const level = this.#foreignLogged ? 'debug' : 'warn'
        this.#foreignLogged = true
        this.#opts.log[level]({ lease: this.id, from: peer, expected }, 'data connection from a foreign address refused')
      }
      socket.destroy()
      return
    }
    if (relay === undefined) {
      this.startRelay(socket)
      return
    }
    // Relay mode: the server connected in; now the proxy dials the client's PORT/EPRT address.
    this.#acceptDeadline?.cancel()
    this.#adoptUpstream(this.#opts.tls?.server == null ? withPooledReads(socket) : socket)
    const { host, port, localAddress, timeoutMs } = relay.client
    connectTo(host, port, localAddress, timeoutMs, this.#opts.tls?.client == null).then(
      (client) => {
        if (this.#outcome !== null || this.#ending !== null) client.destroy()
        else this.startRelay(client)
      },
      (err: Error) => {
        this.#error ??= err
        this.#settle({ result: 'failed', reason: 'client_timeout' })
      },
    )
  }

  /** Relays between the server leg and a client leg: accepted on the pool port, or dialled. */
  startRelay(accepted: net.Socket): void {
    this.#acceptDeadline?.cancel()
    // A clear client leg reads into pooled buffers (pooled-read.ts); a TLS one reads as TLS does.
    const socket = this.#opts.tls?.client == null ? withPooledReads(accepted) : accepted
    // A data connection with no transfer command to carry is given --data-accept-timeout for
    // one to come: a client that trickles bytes on it must not hold the port and the session.
    if (this.#command === null) {
      this.#acceptDeadline = new Deadline(this.#opts.acceptTimeoutMs, () => {
        this.#error ??= new Error('no transfer command came for the data connection')
        this.fail('client_timeout')
      })
    }
    // PROT P on a side: that side's leg is TLS (data-tls.ts).
    const legs = protectLegs(socket, this.#upstream as net.Socket, this.#opts.tls, (err) => {
      this.#error ??= err
      this.fail('tls_handshake')
    })
    this.#client = legs.client
    // A TLS server leg's errors after its handshake (the TCP one's are recorded already).
    if (legs.upstream !== this.#upstream) legs.upstream.on('error', (err) => (this.#error ??= err))
    this.#upstream = legs.upstream
    this.#startedAt = performance.now()
    relayLegs(legs.client, legs.upstream, {
      onError: (err) => {
        this.#error ??= err
      },
      failed: () => this.#error !== null,
      onClosed: () => this.#onLegClosed(),
      onFinish: () => this.#onFinish(),
      upload: () => this.#direction === 'upload',
    })
    this.#meter.start()
    legs.client.resume()
  }

  // Called when either leg has been handed its last byte and our FIN.
  #onFinish(): void {
    if (this.#error !== null || !this.#dataLegFinished()) return
    for (const w of this.#drainWaiters.splice(0)) w('ok')
    this.#completeIfDone()
  }

  #dataLegFinished(): boolean {
    const leg = this.#direction === 'upload' ? this.#upstream : this.#client
    return leg !== null && leg.writableFinished
  }

  #onLegClosed(): void {
    this.#closedLegs++
    if (this.#client === null) {
      // The server closed its leg before any client came: nothing can be relayed.
      if (this.#outcome === null && this.#ending === null) this.#settle({ result: 'failed', reason: 'reset' })
      return
    }
    if (this.#closedLegs < 2) return
    if (this.#ending !== null) this.#settle(this.#ending)
    else if (this.#error !== null) this.#settle({ result: 'failed', reason: 'reset' })
    // With a transfer command, the server's final reply decides (transferSucceeded or fail).
    else if (this.#command === null || this.#transferOk) this.#settle({ result: 'ok' })
  }

  #drainResultAtEnd(): DrainResult {
    if (this.#error === null && this.#dataLegFinished()) return 'ok'
    return this.#client === null ? 'not_connected' : 'failed'
  }

  #settle(outcome: LeaseOutcome): void {
    if (this.#outcome !== null) return
    this.#outcome = outcome
    this.#acceptDeadline?.cancel()
    if (outcome.result === 'ok') {
      // A finished transfer: the server's leg goes now; the client's gets a short grace to close
      // by itself (its FIN, or ours, is already out), then is destroyed whatever it does.
      this.#upstream?.destroy()
      // While the kernel still delivers the tail, `lingering` says so: the idle clock waits.
      if (this.#client !== null && !this.#client.destroyed) {
        this.#lingering = closeAfterTail(this.#client, this.#opts.closeTimeoutMs, this.#opts.dataIdleTimeoutMs).then(() => {
          this.#lingering = null
        })
      }
    } else {
      // Anything else is not a complete transfer: a reset on every leg still open.
      if (this.#client !== null) resetLeg(this.#client)
      if (this.#upstream !== null) resetLeg(this.#upstream)
    }
    this.#opts.port?.release()
    if (this.#client !== null) {
      this.#meter.count()
      this.#opts.metrics.dataTransferSeconds.observe(this.seconds)
    }
    this.#meter.stop()
    const result = this.#drainResultAtEnd()
    for (const w of this.#drainWaiters.splice(0)) w(result)
    this.#opts.metrics.leaseEnded(outcome)
    this.#opts.onEnd(this, outcome)
  }

  /**
   * While a finished transfer's last bytes are still on their way to the client, a promise that
   * resolves when they have arrived; null otherwise. The session counts this as a running
   * transfer for its idle timeout.
   */
  get lingering(): Promise<void> | null {
    return this.#lingering
  }

  /** The error that ended the relay, if any, for logs. */
  get error(): Error | null {
    return this.#error
  }
}
