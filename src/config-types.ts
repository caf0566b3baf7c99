// The shape of a loaded, validated and frozen configuration. src/config.ts builds it.

export interface Endpoint {
  readonly host: string // an IP literal (IPv6 without brackets) or a host name
  readonly port: number
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export type UpstreamDataAddress = 'auto' | 'advertised' | 'control'

/** What a client's PORT/EPRT becomes: passive toward the server, relayed, or refused. */
export type ActiveMode = 'passive' | 'relay' | 'deny'

/** TLS toward clients (--client-tls). */
export type ClientTlsMode = 'off' | 'optional' | 'required'

/** TLS toward the server (--upstream-tls): when the client uses it, always (AUTH TLS after the greeting, or implicit: TLS from the first byte), or never. */
export type UpstreamTlsMode = 'mirror' | 'required' | 'implicit' | 'off'

/** Whether FTPS clients must show a certificate signed by --tls-ca (--client-cert). */
export type ClientCertMode = 'none' | 'optional' | 'required'

/** Whether a client's protected data connection must resume its control session (--client-data-tls-reuse). */
export type DataTlsReuse = 'optional' | 'required'

/** The status page on the metrics listener (--status-page): auto = on only when that listener is on a loopback address. */
export type StatusPageMode = 'auto' | 'on' | 'off'

export interface Config {
  /** Where clients connect (--listen, may repeat). */
  readonly listen: readonly Endpoint[]
  /** Where clients connect with TLS from the first byte, implicit FTPS (--listen-implicit-tls, may repeat; usually port 990). */
  readonly listenImplicitTls: readonly Endpoint[]
  /** The FTP server behind the proxy (--upstream HOST:PORT, required). */
  readonly upstream: Endpoint
  /** Pool of local ports for passive data connections, inclusive (--passive-ports MIN-MAX). */
  readonly passivePorts: { readonly min: number; readonly max: number }
  /** 'auto' = the local address the client dialled, else an IP literal (--advertise-address). */
  readonly advertiseAddress: 'auto' | string
  /** Which server address to dial for data (--upstream-data-address). */
  readonly upstreamDataAddress: UpstreamDataAddress
  /** What a client's PORT/EPRT becomes (--active-mode). */
  readonly activeMode: ActiveMode
  /** Milliseconds to wait for a TCP connect to the server (control or data) (--connect-timeout). */
  readonly connectTimeoutMs: number
  /** Milliseconds a leased pool port waits for the client's data connection (--data-accept-timeout). */
  readonly dataAcceptTimeoutMs: number
  /** Milliseconds a control connection may stay idle while no transfer runs (--idle-timeout). */
  readonly idleTimeoutMs: number
  /** Milliseconds SIGTERM/SIGINT waits for running transfers before closing them (--shutdown-grace). */
  readonly shutdownGraceMs: number
  /** Milliseconds to wait for the server's greeting after the control connect (--greeting-timeout). */
  readonly greetingTimeoutMs: number
  /**
   * Milliseconds a data connection may go without a byte moving either way before it is closed;
   * also how long a finished data connection waits for the server's final reply (--data-idle-timeout).
   */
  readonly dataIdleTimeoutMs: number
  /**
   * Milliseconds after the proxy's own final reply (idle timeout, shutdown, bad input) before the
   * client's connection is destroyed whether or not it read the reply; also the grace a client
   * data leg gets to close by itself after its transfer ended (--close-timeout).
   */
  readonly closeTimeoutMs: number
  /** Passive/active data setups held at once per session and per client (over them: 425). */
  readonly maxLeasesPerSession: number
  readonly maxLeasesPerClient: number
  /** IPv6 clients are grouped by this prefix length for the per-client limits (--client-ipv6-prefix). */
  readonly clientIpv6Prefix: number
  /**
   * Networks the server's advertised data address may be dialled in (--upstream-data-networks):
   * null = unset, the private-range rule (see net/address-policy.ts); [] = none, only the
   * control connection's peer is ever dialled for data.
   */
  readonly upstreamDataNetworks: readonly string[] | null
  /** Whether server data ports below 1024 may be dialled (--upstream-data-low-ports). */
  readonly upstreamDataLowPorts: boolean
  /** Sessions at once, in total and per client IP (--max-sessions, --max-sessions-per-client). */
  readonly maxSessions: number
  readonly maxSessionsPerClient: number
  /** CIDRs whose clients are served; empty = everyone (--allow-clients). */
  readonly allowClients: readonly string[]
  /** Longest control line in bytes, LF included (--max-line-length). */
  readonly maxLineBytes: number
  readonly logLevel: LogLevel
  /** Where /metrics, /healthz and /readyz are served; null = off (--metrics-listen). */
  readonly metricsListen: Endpoint | null
  /**
   * The status page (GET /, /status.json) on the metrics listener (--status-page); auto = on only
   * when the metrics listener is on a loopback address: the page shows server addresses and hints.
   */
  readonly statusPage: StatusPageMode
  /** Whether the status page shows the client address and user of each failed data connection (--status-show-clients). */
  readonly statusShowClients: boolean
  /**
   * PEM files of the certificates and keys shown to FTPS clients, paired in order (--tls-cert,
   * --tls-key, each may repeat); the first is the default, the others are chosen by the name the
   * client asks for (SNI). Empty: no client-side TLS.
   */
  readonly tlsCert: readonly string[]
  readonly tlsKey: readonly string[]
  readonly clientTls: ClientTlsMode
  /** PEM CA file that clients' certificates are checked against (--tls-ca). */
  readonly tlsCa: string | null
  readonly clientCert: ClientCertMode
  readonly upstreamTls: UpstreamTlsMode
  /** PEM CA file for the server's certificate; null = the system's store (--upstream-ca). */
  readonly upstreamCa: string | null
  /** SNI and certificate name toward the server; null = the upstream host when it is a name. */
  readonly upstreamTlsServername: string | null
  /** Whether the server's certificate goes unchecked (--upstream-tls-insecure). */
  readonly upstreamTlsInsecure: boolean
  /** The proxy's own client certificate and key toward a server that asks for one; both or neither (--upstream-tls-cert, --upstream-tls-key). */
  readonly upstreamTlsCert: string | null
  readonly upstreamTlsKey: string | null
  readonly clientDataTlsReuse: DataTlsReuse
  /** Milliseconds a TLS handshake may take on any leg (--tls-handshake-timeout). */
  readonly tlsHandshakeTimeoutMs: number
  /** The config file it came from, if any (--config). */
  readonly configFile: string | null
}
