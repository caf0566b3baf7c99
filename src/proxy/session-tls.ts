// FTPS for one session (RFC 4217): which side's control connection is TLS, each side's data
// protection (PROT), the server's latest TLS session (data connections resume it), and the two
// upgrades, each a swap of a control leg for a TLS socket built on it (ControlLeg.swap). The
// order of commands around them is the conversation's (conversation.ts).

import type { Duplex } from 'node:stream'
import type net from 'node:net'
import type { Logger } from 'pino'
import type { Config } from '../config-types.js'
import { acceptTls, connectTls, tlsDescription, type ClientTlsSide, type Handshake, type TlsSettings } from '../net/tls.js'
import type { ProxyMetrics } from '../observe/metrics.js'
import type { Protection } from './command-policy.js'
import type { DataTls } from './data-tls.js'

export interface SessionTlsOptions {
  readonly settings: TlsSettings | undefined
  readonly config: () => Config
  readonly metrics: ProxyMetrics
  readonly log: Logger
  /** Replaces a control leg's stream (ControlSession.swapLeg). */
  readonly swap: (leg: 'client' | 'server', make: (unread: Buffer, old: Duplex) => Duplex) => void
}

export class SessionTls {
  readonly #opts: SessionTlsOptions
  #clientSecure = false
  #serverSecure = false
  #clientProt: Protection = 'C'
  #serverProt: Protection = 'C'
  /** A control leg's handshake runs: that leg is read whatever flow control says, or it would stall. */
  readonly #handshaking = { client: false, server: false }
  /** The newest TLS session the server gave the proxy's control connection (TLS 1.3 tickets come after the handshake). */
  #serverSession: Buffer | undefined
  /** Protocol and cipher of each side's control connection, once TLS is on. */
  readonly #described: { client?: string; server?: string } = {}
  /** This session's TLS scope toward its client (context, session cache), made at AUTH TLS. */
  #clientScope: ClientTlsSide | null = null

  constructor(opts: SessionTlsOptions) {
    this.#opts = opts
  }

  /** Protocol and cipher of each side that is TLS, for the session's last log line; undefined when neither is. */
  get described(): { readonly client?: string; readonly server?: string } | undefined {
    return this.#described.client === undefined && this.#described.server === undefined ? undefined : this.#described
  }

  /** Whether `leg`'s TLS handshake is under way (flow-control.ts reads it then). */
  handshaking(leg: 'client' | 'server'): boolean {
    return this.#handshaking[leg]
  }

  get clientSecure(): boolean {
    return this.#clientSecure
  }

  get serverSecure(): boolean {
    return this.#serverSecure
  }

  /** The client's PROT (C until it says P). */
  get clientProt(): Protection {
    return this.#clientProt
  }

  set clientProt(prot: Protection) {
    this.#clientProt = prot
  }

  /** The proxy's PROT toward the server, once the server accepted it. */
  get serverProt(): Protection {
    return this.#serverProt
  }

  set serverProt(prot: Protection) {
    this.#serverProt = prot
  }

  /**
   * Whether the client's AUTH TLS needs the server's TLS first: under mirror, a client that asks
   * for TLS is never carried on in clear (under required the server's is on from the greeting).
   */
  get serverFirst(): boolean {
    return this.#opts.config().upstreamTls === 'mirror' && !this.#serverSecure
  }

  /** Makes the server's control leg TLS; resolves once the handshake is done, rejects if it fails. */
  async secureServer(): Promise<void> {
    const settings = this.#opts.settings
    if (settings === undefined) throw new Error('TLS is not set up in this proxy')
    await this.#upgrade('server', (old) => {
      const h = connectTls(old, settings.server, undefined, this.#opts.config().tlsHandshakeTimeoutMs)
      h.socket.on('session', (session: Buffer) => {
        this.#serverSession = session
      })
      return h
    })
    this.#serverSecure = true
  }

  /** Makes the client's control leg TLS (after its 234 is out); resolves once the handshake is done. */
  async secureClient(): Promise<void> {
    const certificate = this.#opts.settings?.clientSide ?? null
    if (certificate === null) throw new Error('no certificate for clients')
    const side = (this.#clientScope ??= certificate.newScope())
    await this.#upgrade('client', (old) => acceptTls(old, side, this.#opts.config().tlsHandshakeTimeoutMs))
    this.#clientSecure = true
  }

  /**
   * Swaps `leg` for the TLS socket `start` makes on it and waits for its handshake, counted and
   * logged. Bytes the peer sent after AUTH TLS (the client's ClientHello) go back into the TCP
   * socket for TLS: they never reach the command reader, so nothing sent in clear after AUTH is
   * ever taken as a command.
   */
  async #upgrade(leg: 'client' | 'server', start: (old: net.Socket) => Handshake): Promise<void> {
    let handshake: Handshake | undefined
    let tcp: Duplex | undefined
    this.#opts.swap(leg, (unread, old) => {
      if (unread.length > 0) old.unshift(unread)
      tcp = old
      handshake = start(old as net.Socket)
      // Set before the swap's flow pass, so that the new leg is read from the start.
      this.#handshaking[leg] = true
      return handshake.socket
    })
    if (handshake === undefined) throw new Error('the session closed before TLS could start')
    try {
      await handshake.secure
    } catch (err) {
      this.#opts.metrics.tlsHandshake(leg, 'control', 'failed')
      // The TCP connection under the failed TLS socket goes too, whatever the TLS socket did
      // with it: under load a hostile implicit client's connection once outlived its session.
      tcp?.destroy()
      throw err
    } finally {
      this.#handshaking[leg] = false
    }
    this.#opts.metrics.tlsHandshake(leg, 'control', 'ok')
    const t = handshake.socket
    const described = tlsDescription(t)
    this.#described[leg] = `${described.version ?? '?'} ${described.cipher ?? '?'}`
    // Toward the client: the name it asked for (SNI) and the certificate it showed, if any.
    const peer = leg === 'client' ? { servername: typeof t.servername === 'string' ? t.servername : null, clientCertificate: t.getPeerX509Certificate()?.subject ?? null } : {}
    this.#opts.log.info({ side: leg, ...described, ...peer }, 'TLS on the control connection')
  }

  /** How a data connection set up now is protected on each side; undefined when both are clear. */
  dataTls(): DataTls | undefined {
    const settings = this.#opts.settings
    if (settings === undefined) return undefined
    const clientSide = this.#clientSecure && this.#clientProt === 'P' ? this.#clientScope : null
    const server = this.#serverSecure && this.#serverProt === 'P'
    if (clientSide === null && !server) return undefined
    return {
      client: clientSide === null ? null : { side: clientSide, requireReuse: this.#opts.config().clientDataTlsReuse === 'required' },
      server: server ? { options: settings.server, session: this.#serverSession } : null,
      timeoutMs: this.#opts.config().tlsHandshakeTimeoutMs,
      metrics: this.#opts.metrics,
    }
  }
}
