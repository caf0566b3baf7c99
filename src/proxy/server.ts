// The proxy: client listeners, one ControlSession per client, the passive port pool, the
// metrics registry and the root logger; graceful close.

import net from 'node:net'
import ipaddr from 'ipaddr.js'
import type { Logger } from 'pino'
import type { Config, Endpoint } from '../config-types.js'
import { clientKey, normalizeAddress, ownAddresses } from '../net/address-policy.js'
import { ConfigError } from '../errors.js'
import { loadTlsSettings, type TlsSettings } from '../net/tls.js'
import { PortPool } from '../net/port-pool.js'
import { createMetrics, type ProxyMetrics } from '../observe/metrics.js'
import { UpstreamReadiness } from '../observe/readiness.js'
import { StatusBoard } from '../observe/status.js'
import { ControlSession, type SessionContext } from './control-session.js'
import { VERSION } from '../version.js'

export interface ProxyOptions {
  readonly config: Config
  readonly logger: Logger
  /** An existing registry-backed metrics object; one is created per proxy otherwise. */
  readonly metrics?: ProxyMetrics
}

export class ProxyServer {
  #config: Config
  readonly logger: Logger
  readonly metrics: ProxyMetrics
  readonly pool: PortPool
  readonly readiness: UpstreamReadiness
  /** What the status page shows beyond the metrics (served by observe/http.ts when it is on). */
  readonly status: StatusBoard
  /** Client listeners; `implicit`: implicit FTPS, TLS from the client's first byte. */
  readonly #listeners: Array<{ readonly server: net.Server; readonly implicit: boolean }> = []
  readonly #sessions = new Set<ControlSession>()
  readonly #context: SessionContext
  readonly #dataMemory: { lastAnswered: string | null } = { lastAnswered: null }
  #sessionSeq = 0
  #leaseSeq = 0
  #closing = false
  #deadline = 0
  #open = 0
  readonly #perClient = new Map<string, number>()
  #own: { readonly at: number; readonly set: ReadonlySet<string> } | null = null
  #allowList: Array<[ipaddr.IPv4 | ipaddr.IPv6, number]> = []
  /** FTPS settings for new sessions: the certificate files as last read. */
  #tls: TlsSettings

  constructor(options: ProxyOptions) {
    this.#config = options.config
    // Certificates are read here (and again on reload): a file that cannot be used stops the start (ConfigError).
    this.#tls = loadTlsSettings(options.config)
    this.logger = options.logger
    this.metrics = options.metrics ?? createMetrics({ version: VERSION })
    this.pool = new PortPool(options.config.passivePorts, () => {
      this.metrics.poolInUse.set(this.pool.inUse)
      this.status.notePeak('pool', this.pool.inUse)
    })
    this.metrics.poolSize.set(this.pool.size)
    this.metrics.poolInUse.set(0)
    this.#allowList = parseAllowList(options.config.allowClients)
    this.readiness = new UpstreamReadiness(
      () => this.#config.upstream,
      () => this.#config.connectTimeoutMs,
    )
    this.status = new StatusBoard({ metrics: this.metrics, readiness: this.readiness, config: () => this.#config })
    this.#context = {
      config: () => this.#config,
      pool: this.pool,
      metrics: this.metrics,
      dataMemory: this.#dataMemory,
      nextLeaseId: () => ++this.#leaseSeq,
      clientLeases: new Map(),
      ownAddresses: () => this.#ownAddresses(),
      tls: () => this.#tls,
      status: this.status,
    }
    if (options.config.upstreamTlsInsecure) {
      this.logger.warn("--upstream-tls-insecure: the FTP server's certificate is not checked; anyone between the proxy and the server can read and change the session")
    }
  }

  get config(): Config {
    return this.#config
  }

  /**
   * Swaps in a new configuration for new sessions and new data connections (advertised address,
   * limits, allowed clients, timeouts, log level). Settings bound at start (listen addresses,
   * the pool, the metrics address) need a restart: a config that changes them is refused.
   */
  reload(next: Config): { ok: true } | { ok: false; reason: string } {
    const cur = this.#config
    const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)
    for (const key of ['listen', 'listenImplicitTls', 'passivePorts', 'metricsListen'] as const) {
      if (!same(cur[key], next[key])) return { ok: false, reason: `${key} cannot change without a restart` }
    }
    // The certificate files are read again (a rotated certificate, same paths): one that cannot
    // be used refuses the reload, and the running one stays. Sessions keep what they started with.
    let tls: TlsSettings
    try {
      tls = loadTlsSettings(next)
    } catch (err) {
      if (err instanceof ConfigError) return { ok: false, reason: err.message }
      throw err
    }
    this.#tls = tls
    if (!same(cur.upstream, next.upstream)) this.#dataMemory.lastAnswered = null
    this.#config = next
    this.#allowList = parseAllowList(next.allowClients)
    this.logger.level = next.logLevel
    return { ok: true }
  }

  // The host's addresses change rarely (DHCP, a new interface): read again every 10 s at most.
  #ownAddresses(): ReadonlySet<string> {
    const now = Date.now()
    if (this.#own === null || now - this.#own.at > 10_000) this.#own = { at: now, set: ownAddresses() }
    return this.#own.set
  }

  #allowed(address: string): boolean {
    if (this.#allowList.length === 0) return true
    if (!ipaddr.isValid(address)) return false
    const addr = ipaddr.process(address)
    return this.#allowList.some(([net, bits]) => addr.kind() === net.kind() && addr.match(net, bits))
  }

  get sessionCount(): number {
    return this.#sessions.size
  }

  /** The addresses the proxy listens on for clients (ports resolved when the config said 0). */
  addresses(): Endpoint[] {
    return this.#listenAddresses(false)
  }

  /** The addresses of the implicit FTPS listeners. */
  implicitAddresses(): Endpoint[] {
    return this.#listenAddresses(true)
  }

  #listenAddresses(implicit: boolean): Endpoint[] {
    return this.#listeners
      .filter((l) => l.implicit === implicit)
      .map((l) => {
        const a = l.server.address() as net.AddressInfo
        return { host: a.address, port: a.port }
      })
  }

  async listen(): Promise<void> {
    const listeners = [...this.#config.listen.map((ep) => ({ ep, implicit: false })), ...this.#config.listenImplicitTls.map((ep) => ({ ep, implicit: true }))]
    for (const { ep, implicit } of listeners) {
      // pauseOnConnect: the client is not read until its upstream connection exists.
      const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => this.#onClient(socket, implicit))
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen({ host: ep.host, port: ep.port }, () => {
          server.off('error', reject)
          resolve()
        })
      })
      server.on('error', (err) => this.logger.error({ err }, 'listener error'))
      this.#listeners.push({ server, implicit })
    }
    this.readiness.start()
    this.logger.info(
      {
        listen: this.addresses().map((a) => `${a.host}:${a.port}`),
        ...(this.#config.listenImplicitTls.length === 0 ? {} : { listenImplicitTls: this.implicitAddresses().map((a) => `${a.host}:${a.port}`) }),
        upstream: `${this.#config.upstream.host}:${this.#config.upstream.port}`,
        passivePorts: `${this.#config.passivePorts.min}-${this.#config.passivePorts.max}`,
        version: VERSION,
      },
      'proxy listening',
    )
  }

  /** A client connected; `implicit`: to an implicit FTPS listener. */
  #onClient(client: net.Socket, implicit: boolean): void {
    if (this.#closing) {
      client.destroy()
      return
    }
    const sid = `s${++this.#sessionSeq}`
    const clientAddress = normalizeAddress(client.remoteAddress ?? '')
    const log = this.logger.child({ sid, client: clientAddress })
    client.on('error', (err) => log.debug({ error: err.message }, 'client error before session'))
    const config = this.#config
    // A refusal in words, except to an implicit FTPS client, which expects a TLS handshake and
    // cannot read a reply in clear: it is closed, and the log says why.
    const refuse = (reply: string): void => {
      if (implicit) client.destroy()
      else endWith(client, reply)
    }
    // Access control first: a client outside --allow-clients never reaches the server.
    if (!this.#allowed(clientAddress)) {
      this.metrics.sessionsRejected.inc({ reason: 'acl' })
      log.warn('client not in --allow-clients; refused')
      refuse('421 Service not available: your address is not allowed to use this proxy.\r\n')
      return
    }
    // IPv6 clients count by network (--client-ipv6-prefix): one host can hold 2^64 addresses.
    const key = clientKey(clientAddress, config.clientIpv6Prefix)
    const fromClient = this.#perClient.get(key) ?? 0
    if (this.#open >= config.maxSessions || fromClient >= config.maxSessionsPerClient) {
      const which = this.#open >= config.maxSessions ? `${config.maxSessions} sessions in total` : `${config.maxSessionsPerClient} sessions from your address`
      this.metrics.sessionsRejected.inc({ reason: 'limit' })
      log.warn({ open: this.#open, fromClient }, `session limit reached (${which}); refused`)
      refuse(`421 Too many connections: the proxy serves at most ${which}; try again later.\r\n`)
      return
    }
    // Counted from accept to close, connecting sessions included.
    this.#open++
    this.#perClient.set(key, fromClient + 1)
    client.once('close', () => {
      this.#open--
      const n = (this.#perClient.get(key) ?? 1) - 1
      if (n === 0) this.#perClient.delete(key)
      else this.#perClient.set(key, n)
    })
    const { host, port } = config.upstream
    const upstream = net.connect({ host, port, allowHalfOpen: true })
    upstream.pause()
    const timer = setTimeout(() => {
      upstream.destroy(Object.assign(new Error(`connect timed out after ${this.#config.connectTimeoutMs} ms`), { code: 'ETIMEDOUT' }))
    }, this.#config.connectTimeoutMs)
    const onConnectError = (err: NodeJS.ErrnoException): void => {
      clearTimeout(timer)
      this.readiness.record(false, err.code ?? err.message)
      this.metrics.sessionsRejected.inc({ reason: 'upstream_unreachable' })
      log.warn({ upstream: `${host}:${port}`, error: err.code ?? err.message }, 'FTP server unreachable; session refused')
      refuse(`421 Service not available: the proxy cannot reach the FTP server (${err.code ?? err.message}).\r\n`)
    }
    upstream.once('error', onConnectError)
    upstream.once('connect', () => {
      clearTimeout(timer)
      upstream.off('error', onConnectError)
      this.readiness.record(true)
      if (client.destroyed || this.#closing) {
        upstream.destroy()
        client.destroy()
        return
      }
      client.setKeepAlive(true, 60_000)
      upstream.setKeepAlive(true, 60_000)
      client.setNoDelay(true)
      upstream.setNoDelay(true)
      const session = new ControlSession(
        sid,
        client,
        upstream,
        {
          clientAddress,
          clientKey: key,
          clientPort: client.remotePort ?? 0,
          localAddress: normalizeAddress(client.localAddress ?? ''),
          upstreamAddress: normalizeAddress(upstream.remoteAddress ?? host),
          upstreamPort: upstream.remotePort ?? port,
          upstreamLocalAddress: normalizeAddress(upstream.localAddress ?? ''),
          upstreamFamily: net.isIPv6(normalizeAddress(upstream.remoteAddress ?? '')) ? 6 : 4,
          upstreamLocalPort: upstream.localPort ?? 0,
          implicitTls: implicit,
        },
        this.#context,
        log,
      )
      this.#sessions.add(session)
      this.metrics.sessionsTotal.inc()
      this.metrics.sessionsActive.inc()
      this.status.notePeak('sessions', this.#sessions.size)
      void session.done.then(() => this.#sessions.delete(session))
      session.start()
      client.resume()
      upstream.resume()
    })
  }

  /** Ends the grace of a running close() now (a second signal). */
  endGraceNow(): void {
    this.#deadline = 0
  }

  /**
   * Stops accepting, lets running transfers finish within `graceMs`, then closes what is left.
   * Sessions with no transfer running are closed at once with a 421.
   * Resolves with the number of sessions cut at the end of the grace.
   */

  async close(graceMs: number): Promise<number> {
    this.#closing = true
    this.readiness.stop()
    // Not awaited: a server's close callback waits for every connection it accepted.
    for (const l of this.#listeners) l.server.close()
    this.#deadline = Date.now() + graceMs
    while (this.#sessions.size > 0 && Date.now() < this.#deadline) {
      for (const s of this.#sessions) {
        if (!s.transferActive) s.closeWith('421 Service closing control connection: the proxy is shutting down.\r\n', 'shutdown')
      }
      await new Promise((r) => setTimeout(r, 50))
    }
    const cut = this.#sessions.size
    for (const s of this.#sessions) s.close('shutdown grace ended')
    // Every leg is destroyed by now; a lease that still waits on a socket event must not hold
    // the shutdown forever.
    await Promise.race([Promise.all([...this.#sessions].map((s) => s.done)), new Promise((r) => setTimeout(r, 5000).unref())])
    return cut
  }
}

function parseAllowList(cidrs: readonly string[]): Array<[ipaddr.IPv4 | ipaddr.IPv6, number]> {
  // Validated when the config was loaded; IPv4-mapped IPv6 clients are matched as IPv4.
  return cidrs.map((c) => ipaddr.parseCIDR(c))
}

/**
 * Sends a last reply and closes the socket once it is flushed. The listener allows half-open
 * sockets, so end() alone would keep the fd (and the client's place in the limits) until the
 * client closes its side, which a client that was refused may never do.
 */
function endWith(socket: net.Socket, reply: string): void {
  socket.end(reply, () => socket.destroy())
}
