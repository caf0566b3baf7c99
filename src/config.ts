// Settings for the proxy command: defaults, flags, environment and an optional config file,
// merged, validated and frozen (STYLE.md 8, after fastify lib/initial-config-validation.js).
//
// loadConfig only builds a Config; it never prints or exits. cli.ts picks the command first:
// `diagnose`, `demo` and `--help`/`-h` are handled there, and loadConfig gets the arguments after
// the program name and after the optional `proxy` command word. Anything loadConfig does not
// know, `--help` included, is a ConfigError, so a mistyped flag stops the proxy instead of being
// ignored. Each call reads everything afresh and returns a new frozen object, so a reload builds
// and validates a whole new Config and swaps it in.
//
// Precedence, per setting: flag, then environment variable, then config file, then DEFAULTS.
// The config file's path itself comes from --config, else FTP_PROXY_CONFIG.

import { readFileSync } from 'node:fs'
import { extname } from 'node:path'
import { parseArgs } from 'node:util'
import ipaddr from 'ipaddr.js'
import { parse as parseYaml } from 'yaml'
import type { ActiveMode, ClientCertMode, ClientTlsMode, Config, DataTlsReuse, Endpoint, LogLevel, StatusPageMode, UpstreamDataAddress, UpstreamTlsMode } from './config-types.js'
import { formatDuration, parseDuration } from './duration.js'
import { ConfigError } from './errors.js'
import { formatEndpoint } from './net/endpoint.js'

// Each pool port is a listener held open while leased (STYLE.md 6), one file descriptor each;
// a larger pool mostly means hitting the fd limit at an unpredictable moment instead of now.
const MAX_POOL_PORTS = 10_000
// A floor so 227/229 replies and ordinary commands with a path always fit; a ceiling because
// every connection may buffer up to this much while it waits for the LF.
const MIN_LINE_BYTES = 512
const MAX_LINE_BYTES = 1_048_576
// No timeout needs to exceed a day; a bigger value is far more likely a unit mistake.
const MAX_DURATION_MS = 86_400_000
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
const UPSTREAM_DATA_ADDRESSES: readonly UpstreamDataAddress[] = ['auto', 'advertised', 'control']
const ACTIVE_MODES: readonly ActiveMode[] = ['passive', 'relay', 'deny']
const CLIENT_TLS_MODES: readonly ClientTlsMode[] = ['off', 'optional', 'required']
const UPSTREAM_TLS_MODES: readonly UpstreamTlsMode[] = ['mirror', 'required', 'implicit', 'off']
const CLIENT_CERT_MODES: readonly ClientCertMode[] = ['none', 'optional', 'required']
const DATA_TLS_REUSE: readonly DataTlsReuse[] = ['optional', 'required']
const STATUS_PAGE_MODES: readonly StatusPageMode[] = ['auto', 'on', 'off']

/** Everything but the upstream server, which has no sensible default and must be given. */
export const DEFAULTS: Omit<Config, 'upstream'> = deepFreeze({
  // Loopback only: exposing the proxy to a network should be a deliberate choice.
  listen: [{ host: '127.0.0.1', port: 2121 }],
  listenImplicitTls: [],
  // TCP ports, inclusive: 100 passive transfers at once. Below Linux's default ephemeral range
  // (32768-60999), so the kernel does not hand these ports to outgoing connections.
  passivePorts: { min: 30000, max: 30099 },
  advertiseAddress: 'auto',
  upstreamDataAddress: 'auto',
  // Active mode toward the client, passive toward the server: works through the server's NAT.
  activeMode: 'passive',
  connectTimeoutMs: 5_000, // ms, a TCP connect to the server, control or data
  dataAcceptTimeoutMs: 30_000, // ms, a leased pool port waits this long for the client
  idleTimeoutMs: 900_000, // ms = 15 min without commands while no transfer runs
  shutdownGraceMs: 30_000, // ms, running transfers may finish after SIGTERM/SIGINT
  greetingTimeoutMs: 30_000, // ms, a server that accepts but never greets
  // ms = 10 min with no byte either way on a data connection; generous, because a server may
  // think for minutes before the first byte of a large listing or a generated file.
  dataIdleTimeoutMs: 600_000,
  // ms after the proxy's own final reply before the client's socket is destroyed unread; also
  // the grace a client data leg gets to close by itself once its transfer ended.
  closeTimeoutMs: 2_000,
  // Data setups (passive or active) held at once. A client uses one at a time; a few more allow
  // for a PASV repeated before the last transfer's leg closed. Per client address, so one host
  // opening many sessions cannot empty the pool either.
  maxLeasesPerSession: 4,
  maxLeasesPerClient: 50,
  // bits: IPv6 clients in one /64 (one customer's network, RFC 6177) count as one client.
  clientIpv6Prefix: 64,
  // null = the private-range rule: a server's 227 may name a private address only when the
  // proxy itself sits in a private network (see net/address-policy.ts dataTargets).
  upstreamDataNetworks: null,
  upstreamDataLowPorts: false, // server data ports below 1024 are refused
  // Sessions at once. Behind NAT many clients share one IP, so the per-IP limit is generous.
  maxSessions: 2000,
  maxSessionsPerClient: 200,
  allowClients: [], // CIDRs; empty = every client
  maxLineBytes: 8192, // bytes per control line, LF included
  logLevel: 'info',
  // Prometheus metrics, /healthz and /readyz; loopback only by default. 9464 is the port
  // registered for Prometheus exporters of this kind.
  metricsListen: { host: '127.0.0.1', port: 9464 },
  // The status page shows server addresses and hints: by default only where the metrics listener
  // is loopback (docs/status.md); client addresses and users only when asked for.
  statusPage: 'auto',
  statusShowClients: false,
  // FTPS (RFC 4217). With no certificate the client side stays clear, as before FTPS existed;
  // with one, clients may ask for TLS (optional) unless --client-tls says otherwise.
  tlsCert: [],
  tlsKey: [],
  clientTls: 'off',
  tlsCa: null,
  clientCert: 'none',
  // TLS to the server exactly when the client used TLS: a protected client is never carried on
  // in clear, and a clear one is not made to depend on the server's certificate.
  upstreamTls: 'mirror',
  upstreamCa: null, // PEM file; null = the system's CA store
  upstreamTlsServername: null, // null = the upstream host when it is a name; none for an IP
  upstreamTlsInsecure: false,
  upstreamTlsCert: null,
  upstreamTlsKey: null,
  clientDataTlsReuse: 'optional',
  tlsHandshakeTimeoutMs: 10_000, // ms, a TLS handshake on any leg, control or data
  configFile: null,
})

// One row per setting: the camelCase key (config file key and name in error messages), the flag,
// the environment variable and the help text. Flag parsing, the environment, the check for
// unknown file keys and --help all come from this table, so they cannot drift apart.
const SETTINGS = [
  {
    key: 'listen',
    flag: 'listen',
    env: 'FTP_PROXY_LISTEN',
    arg: 'HOST:PORT',
    help: 'Where clients connect. Repeat the flag or separate with commas. IPv6 as [::1]:2121; port 0 = any free port.',
  },
  {
    key: 'upstream',
    flag: 'upstream',
    env: 'FTP_PROXY_UPSTREAM',
    arg: 'HOST:PORT',
    help: 'The FTP server behind the proxy, by host name or IP.',
  },
  {
    key: 'passivePorts',
    flag: 'passive-ports',
    env: 'FTP_PROXY_PASSIVE_PORTS',
    arg: 'MIN-MAX',
    help: `Local ports for passive data connections, inclusive, 1-65535, at most ${MAX_POOL_PORTS} of them.`,
  },
  {
    key: 'advertiseAddress',
    flag: 'advertise-address',
    env: 'FTP_PROXY_ADVERTISE_ADDRESS',
    arg: 'auto|IPv4',
    help: 'Address put in 227 replies to clients; auto = the local address the client dialled.',
  },
  {
    key: 'upstreamDataAddress',
    flag: 'upstream-data-address',
    env: 'FTP_PROXY_UPSTREAM_DATA_ADDRESS',
    arg: UPSTREAM_DATA_ADDRESSES.join('|'),
    help: "Server address to dial for data: the control connection's (control); the one in the server's 227 reply (advertised); or the control address first, then the advertised one (auto). The advertised address is dialled only where --upstream-data-networks allows it.",
  },
  {
    key: 'activeMode',
    flag: 'active-mode',
    env: 'FTP_PROXY_ACTIVE_MODE',
    arg: ACTIVE_MODES.join('|'),
    help: "What a client's PORT/EPRT becomes: a passive connection toward the server that the proxy joins to the client's data address (passive); a PORT/EPRT to the server naming a pool port of the proxy, joined to the client's data address when the server connects (relay); or a 502 refusal (deny). Only the client's own address and ports from 1024 up are ever dialled.",
  },
  {
    key: 'connectTimeout',
    flag: 'connect-timeout',
    env: 'FTP_PROXY_CONNECT_TIMEOUT',
    arg: 'DURATION',
    help: 'Limit on a TCP connect to the server, control or data.',
  },
  {
    key: 'dataAcceptTimeout',
    flag: 'data-accept-timeout',
    env: 'FTP_PROXY_DATA_ACCEPT_TIMEOUT',
    arg: 'DURATION',
    help: "How long a passive port waits for the client's data connection.",
  },
  {
    key: 'idleTimeout',
    flag: 'idle-timeout',
    env: 'FTP_PROXY_IDLE_TIMEOUT',
    arg: 'DURATION',
    help: 'Close a control connection idle this long while no transfer runs.',
  },
  {
    key: 'shutdownGrace',
    flag: 'shutdown-grace',
    env: 'FTP_PROXY_SHUTDOWN_GRACE',
    arg: 'DURATION',
    help: 'On SIGTERM/SIGINT, how long running transfers may go on before they are closed.',
  },
  {
    key: 'greetingTimeout',
    flag: 'greeting-timeout',
    env: 'FTP_PROXY_GREETING_TIMEOUT',
    arg: 'DURATION',
    help: "How long to wait for the server's greeting before the client gets a 421.",
  },
  {
    key: 'maxSessions',
    flag: 'max-sessions',
    env: 'FTP_PROXY_MAX_SESSIONS',
    arg: 'N',
    help: 'Sessions at once; past it a client gets 421.',
  },
  {
    key: 'maxSessionsPerClient',
    flag: 'max-sessions-per-client',
    env: 'FTP_PROXY_MAX_SESSIONS_PER_CLIENT',
    arg: 'N',
    help: 'Sessions at once from one client IP (clients behind one NAT share it; IPv6 clients are grouped by --client-ipv6-prefix).',
  },
  {
    key: 'dataIdleTimeout',
    flag: 'data-idle-timeout',
    env: 'FTP_PROXY_DATA_IDLE_TIMEOUT',
    arg: 'DURATION',
    help: "Close a data connection on which no byte moved either way for this long; also how long a finished data connection waits for the server's final reply.",
  },
  {
    key: 'closeTimeout',
    flag: 'close-timeout',
    env: 'FTP_PROXY_CLOSE_TIMEOUT',
    arg: 'DURATION',
    help: "After the proxy's own final reply (idle timeout, shutdown, bad input), destroy the client's connection this long later whether or not it read the reply; also the grace a client data connection gets to close by itself after its transfer ended.",
  },
  {
    key: 'maxLeasesPerSession',
    flag: 'max-leases-per-session',
    env: 'FTP_PROXY_MAX_LEASES_PER_SESSION',
    arg: 'N',
    help: 'Data connection setups (PASV, EPSV, PORT, EPRT) one session holds at once; past it the client gets 425.',
  },
  {
    key: 'maxLeasesPerClient',
    flag: 'max-leases-per-client',
    env: 'FTP_PROXY_MAX_LEASES_PER_CLIENT',
    arg: 'N',
    help: 'Data connection setups held at once by all sessions of one client address together; past it the client gets 425.',
  },
  {
    key: 'clientIpv6Prefix',
    flag: 'client-ipv6-prefix',
    env: 'FTP_PROXY_CLIENT_IPV6_PREFIX',
    arg: 'BITS',
    help: 'IPv6 clients in one network of this prefix length, 1-128, count as one client for the per-client session and data limits.',
  },
  {
    key: 'upstreamDataNetworks',
    flag: 'upstream-data-networks',
    env: 'FTP_PROXY_UPSTREAM_DATA_NETWORKS',
    arg: 'none|CIDR,...',
    help: "Networks in which the address a server's 227 names may be dialled for data when it differs from the server's control address. Unset: private ranges only (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7), and only when the proxy's own address toward the server is private too; never loopback, link-local or the proxy's own addresses. none: only the control address is dialled.",
  },
  {
    key: 'upstreamDataLowPorts',
    flag: 'upstream-data-low-ports',
    env: 'FTP_PROXY_UPSTREAM_DATA_LOW_PORTS',
    arg: '',
    help: 'Allow server data ports below 1024 (refused by default: a 227 naming one is more likely an attack than a server). The variable takes true or false.',
  },
  {
    key: 'allowClients',
    flag: 'allow-clients',
    env: 'FTP_PROXY_ALLOW_CLIENTS',
    arg: 'CIDR,...',
    help: 'Only clients in these networks are served (IPv4 and IPv6); others get 421 before anything reaches the server. Empty = everyone.',
  },
  {
    key: 'maxLineLength',
    flag: 'max-line-length',
    env: 'FTP_PROXY_MAX_LINE_LENGTH',
    arg: 'BYTES',
    help: `Longest control line, LF included, ${MIN_LINE_BYTES}-${MAX_LINE_BYTES}.`,
  },
  {
    key: 'metricsListen',
    flag: 'metrics-listen',
    env: 'FTP_PROXY_METRICS_LISTEN',
    arg: 'HOST:PORT|off',
    help: 'Where /metrics, /healthz and /readyz are served; off disables them; port 0 = any free port (logged).',
  },
  {
    key: 'statusPage',
    flag: 'status-page',
    env: 'FTP_PROXY_STATUS_PAGE',
    arg: STATUS_PAGE_MODES.join('|'),
    help: 'The status page on the metrics listener (GET /, /status.json, /status/events): on, off, or auto = on only when --metrics-listen is a loopback address (the page shows server addresses and hints to whoever reaches that listener).',
  },
  {
    key: 'statusShowClients',
    flag: 'status-show-clients',
    env: 'FTP_PROXY_STATUS_SHOW_CLIENTS',
    arg: '',
    help: 'Show the client address and user of each failed data connection on the status page (hidden by default). The variable takes true or false.',
  },
  {
    key: 'listenImplicitTls',
    flag: 'listen-implicit-tls',
    env: 'FTP_PROXY_LISTEN_IMPLICIT_TLS',
    arg: 'HOST:PORT',
    help: 'Where clients connect with TLS from the first byte (implicit FTPS, usually port 990); needs --tls-cert. Repeat the flag or separate with commas.',
  },
  {
    key: 'tlsCert',
    flag: 'tls-cert',
    env: 'FTP_PROXY_TLS_CERT',
    arg: 'FILE',
    help: 'PEM certificate (chain) the proxy shows FTPS clients; with --tls-key. Repeat both, in pairs, for several names: the first is the default, the others are chosen by the name the client asks for (SNI).',
  },
  {
    key: 'tlsKey',
    flag: 'tls-key',
    env: 'FTP_PROXY_TLS_KEY',
    arg: 'FILE',
    help: 'PEM private key of --tls-cert (one per --tls-cert, in the same order).',
  },
  {
    key: 'tlsCa',
    flag: 'tls-ca',
    env: 'FTP_PROXY_TLS_CA',
    arg: 'FILE',
    help: "PEM CA certificates that FTPS clients' certificates are checked against (--client-cert).",
  },
  {
    key: 'clientCert',
    flag: 'client-cert',
    env: 'FTP_PROXY_CLIENT_CERT',
    arg: CLIENT_CERT_MODES.join('|'),
    help: 'Client certificates: not asked for (none), checked against --tls-ca when shown (optional), or demanded (required: a client without one is refused at the handshake).',
  },
  {
    key: 'clientTls',
    flag: 'client-tls',
    env: 'FTP_PROXY_CLIENT_TLS',
    arg: CLIENT_TLS_MODES.join('|'),
    help: 'TLS toward clients: refused (off), offered (optional), or demanded before USER (required: USER in clear gets 530). Default optional with a certificate, off without.',
  },
  {
    key: 'upstreamTls',
    flag: 'upstream-tls',
    env: 'FTP_PROXY_UPSTREAM_TLS',
    arg: UPSTREAM_TLS_MODES.join('|'),
    help: 'TLS toward the server: when the client uses it (mirror; a server without AUTH TLS is then refused, never used in clear), always (required: AUTH TLS after the greeting; implicit: TLS from the first byte, a server on port 990), or never (off: TLS to the client, clear to a legacy server inside the network).',
  },
  {
    key: 'upstreamCa',
    flag: 'upstream-ca',
    env: 'FTP_PROXY_UPSTREAM_CA',
    arg: 'FILE',
    help: "PEM CA certificates the server's certificate is checked against instead of the system's.",
  },
  {
    key: 'upstreamTlsServername',
    flag: 'upstream-tls-servername',
    env: 'FTP_PROXY_UPSTREAM_TLS_SERVERNAME',
    arg: 'NAME',
    help: "Name sent (SNI) and checked in the server's certificate, on the control and every data connection; default the upstream host when it is a name.",
  },
  {
    key: 'upstreamTlsInsecure',
    flag: 'upstream-tls-insecure',
    env: 'FTP_PROXY_UPSTREAM_TLS_INSECURE',
    arg: '',
    help: "Do not check the server's certificate (self-signed test servers only; warned at start). The variable takes true or false.",
  },
  {
    key: 'upstreamTlsCert',
    flag: 'upstream-tls-cert',
    env: 'FTP_PROXY_UPSTREAM_TLS_CERT',
    arg: 'FILE',
    help: 'PEM client certificate the proxy shows a server that asks for one, on control and data; with --upstream-tls-key.',
  },
  {
    key: 'upstreamTlsKey',
    flag: 'upstream-tls-key',
    env: 'FTP_PROXY_UPSTREAM_TLS_KEY',
    arg: 'FILE',
    help: 'PEM private key of --upstream-tls-cert.',
  },
  {
    key: 'clientDataTlsReuse',
    flag: 'client-data-tls-reuse',
    env: 'FTP_PROXY_CLIENT_DATA_TLS_REUSE',
    arg: DATA_TLS_REUSE.join('|'),
    help: "Whether a client's protected data connection must resume its control connection's TLS session (required: a stolen data port yields nothing even from the client's own IP).",
  },
  {
    key: 'tlsHandshakeTimeout',
    flag: 'tls-handshake-timeout',
    env: 'FTP_PROXY_TLS_HANDSHAKE_TIMEOUT',
    arg: 'DURATION',
    help: 'Limit on a TLS handshake on any leg, control or data.',
  },
  {
    key: 'config',
    flag: 'config',
    env: 'FTP_PROXY_CONFIG',
    arg: 'FILE',
    help: 'Config file, .json, .yaml or .yml (see below).',
  },
  {
    key: 'logLevel',
    flag: 'log-level',
    env: 'FTP_PROXY_LOG_LEVEL',
    arg: LOG_LEVELS.join('|'),
    help: 'Least severe level written to the log.',
  },
] as const

type SettingKey = (typeof SETTINGS)[number]['key']

/** Which setting a raw value is for and where it came from, for error messages. */
interface Origin {
  readonly key: SettingKey
  readonly from: string
}

interface Raw {
  readonly value: unknown
  readonly origin: Origin
}

// `multiple` for every flag, so a flag given twice is reported instead of the last one winning.
// A row whose arg is '' is a switch: present means true, and it takes no value.
const isSwitch = (s: (typeof SETTINGS)[number]): boolean => s.arg === ''
const PARSE_ARGS_OPTIONS = Object.fromEntries(
  SETTINGS.map((s) => [s.flag, { type: isSwitch(s) ? 'boolean' : 'string', multiple: true }] as const),
)

/**
 * Build the proxy's configuration.
 * @param argv the arguments after the program name and the optional `proxy` command word
 * @param env usually process.env; an empty variable counts as unset, as container tools often
 *   write `NAME=` for "not given"
 * @param readFile reads the config file; tests pass their own
 * @throws ConfigError naming the first setting that breaks a rule
 */
export function loadConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string = (path) => readFileSync(path, 'utf8'),
): Config {
  const flags = parseFlags(argv)
  const configRaw = flags.get('config') ?? fromEnv(env, 'config')
  const configFile = configRaw === undefined ? null : configFileName(configRaw)
  const file = configFile === null ? new Map<SettingKey, Raw>() : readConfigFile(configFile, readFile)

  // First of flag, environment, file; undefined when none of them sets it.
  const raw = (key: SettingKey): Raw | undefined =>
    flags.get(key) ?? fromEnv(env, key) ?? file.get(key)
  function setting<T>(key: SettingKey, parse: (r: Raw) => T, fallback: T): T {
    const r = raw(key)
    return r === undefined ? fallback : parse(r)
  }

  const upstreamRaw = raw('upstream')
  if (upstreamRaw === undefined) {
    throw new ConfigError(
      'upstream',
      'required (HOST:PORT of the FTP server; --upstream or FTP_PROXY_UPSTREAM)',
    )
  }
  const config: Config = {
    listen: setting('listen', parseListen, DEFAULTS.listen),
    listenImplicitTls: setting('listenImplicitTls', parseListen, DEFAULTS.listenImplicitTls),
    upstream: parseEndpoint(expectString(upstreamRaw, 'HOST:PORT'), upstreamRaw.origin, false),
    passivePorts: setting('passivePorts', parsePortRange, DEFAULTS.passivePorts),
    advertiseAddress: setting('advertiseAddress', parseAdvertiseAddress, DEFAULTS.advertiseAddress),
    upstreamDataAddress: setting(
      'upstreamDataAddress',
      (r) => parseChoice(r, UPSTREAM_DATA_ADDRESSES),
      DEFAULTS.upstreamDataAddress,
    ),
    activeMode: setting('activeMode', (r) => parseChoice(r, ACTIVE_MODES), DEFAULTS.activeMode),
    connectTimeoutMs: setting('connectTimeout', parseDurationSetting, DEFAULTS.connectTimeoutMs),
    dataAcceptTimeoutMs: setting('dataAcceptTimeout', parseDurationSetting, DEFAULTS.dataAcceptTimeoutMs),
    idleTimeoutMs: setting('idleTimeout', parseDurationSetting, DEFAULTS.idleTimeoutMs),
    shutdownGraceMs: setting('shutdownGrace', parseDurationSetting, DEFAULTS.shutdownGraceMs),
    greetingTimeoutMs: setting('greetingTimeout', parseDurationSetting, DEFAULTS.greetingTimeoutMs),
    dataIdleTimeoutMs: setting('dataIdleTimeout', parseDurationSetting, DEFAULTS.dataIdleTimeoutMs),
    closeTimeoutMs: setting('closeTimeout', parseDurationSetting, DEFAULTS.closeTimeoutMs),
    maxLeasesPerSession: setting('maxLeasesPerSession', parseCount, DEFAULTS.maxLeasesPerSession),
    maxLeasesPerClient: setting('maxLeasesPerClient', parseCount, DEFAULTS.maxLeasesPerClient),
    clientIpv6Prefix: setting('clientIpv6Prefix', parsePrefixLength, DEFAULTS.clientIpv6Prefix),
    upstreamDataNetworks: setting('upstreamDataNetworks', parseDataNetworks, DEFAULTS.upstreamDataNetworks),
    upstreamDataLowPorts: setting('upstreamDataLowPorts', parseBoolean, DEFAULTS.upstreamDataLowPorts),
    maxSessions: setting('maxSessions', parseCount, DEFAULTS.maxSessions),
    maxSessionsPerClient: setting('maxSessionsPerClient', parseCount, DEFAULTS.maxSessionsPerClient),
    allowClients: setting('allowClients', parseCidrs, DEFAULTS.allowClients),
    maxLineBytes: setting('maxLineLength', parseLineLength, DEFAULTS.maxLineBytes),
    logLevel: setting('logLevel', (r) => parseChoice(r, LOG_LEVELS), DEFAULTS.logLevel),
    metricsListen: setting('metricsListen', parseMetricsListen, DEFAULTS.metricsListen),
    statusPage: setting('statusPage', (r) => parseChoice(r, STATUS_PAGE_MODES), DEFAULTS.statusPage),
    statusShowClients: setting('statusShowClients', parseBoolean, DEFAULTS.statusShowClients),
    ...tlsSettings(raw),
    configFile,
  }
  checkPoolAgainstListen(config)
  if (config.listenImplicitTls.length > 0 && config.clientTls === 'off') {
    throw new ConfigError('listenImplicitTls', 'an implicit FTPS listener needs a certificate: give --tls-cert and --tls-key (and not --client-tls off)')
  }
  return deepFreeze(config)
}

/** The FTPS settings, checked together: a client side that offers TLS needs a certificate and its key. */
function tlsSettings(raw: (key: SettingKey) => Raw | undefined): Pick<
  Config,
  | 'tlsCert'
  | 'tlsKey'
  | 'clientTls'
  | 'tlsCa'
  | 'clientCert'
  | 'upstreamTls'
  | 'upstreamCa'
  | 'upstreamTlsServername'
  | 'upstreamTlsInsecure'
  | 'upstreamTlsCert'
  | 'upstreamTlsKey'
  | 'clientDataTlsReuse'
  | 'tlsHandshakeTimeoutMs'
> {
  const file = (key: SettingKey): string | null => {
    const r = raw(key)
    return r === undefined ? null : configFileName(r)
  }
  const files = (key: SettingKey): string[] => {
    const r = raw(key)
    if (r === undefined) return []
    const items = typeof r.value === 'string' ? [r.value] : r.value
    if (!Array.isArray(items) || items.length === 0) throw fail(r.origin, `expected a file name or a list of them, got ${describe(r.value)}`)
    return items.map((i) => configFileName({ value: i as unknown, origin: r.origin }))
  }
  const tlsCert = files('tlsCert')
  const tlsKey = files('tlsKey')
  if (tlsCert.length !== tlsKey.length) {
    throw new ConfigError(tlsCert.length < tlsKey.length ? 'tlsCert' : 'tlsKey', `give --tls-cert and --tls-key together, one key per certificate (${tlsCert.length} certificates, ${tlsKey.length} keys)`)
  }
  const clientCertRaw = raw('clientCert')
  const clientCert = clientCertRaw === undefined ? DEFAULTS.clientCert : parseChoice(clientCertRaw, CLIENT_CERT_MODES)
  const clientTlsRaw = raw('clientTls')
  // Client certificates required: a clear session would go round them, so TLS is required too.
  const clientTlsDefault = tlsCert.length === 0 ? 'off' : clientCert === 'required' ? 'required' : 'optional'
  const clientTls = clientTlsRaw === undefined ? clientTlsDefault : parseChoice(clientTlsRaw, CLIENT_TLS_MODES)
  if (clientTls !== 'off' && tlsCert.length === 0) {
    throw new ConfigError('clientTls', `${clientTls} needs a certificate: give --tls-cert and --tls-key`)
  }
  if (clientCert === 'required' && clientTls === 'optional') {
    throw new ConfigError('clientTls', 'optional would let clients in clear past --client-cert required; use --client-tls required (the default with it)')
  }
  const tlsCa = file('tlsCa')
  if (clientCert !== 'none' && tlsCa === null) {
    throw new ConfigError('clientCert', `${clientCert} needs the CA that signs the clients' certificates: give --tls-ca`)
  }
  if (clientCert !== 'none' && clientTls === 'off') {
    throw new ConfigError('clientCert', `${clientCert} needs TLS toward clients: give --tls-cert and --tls-key`)
  }
  const upstreamTlsCert = file('upstreamTlsCert')
  const upstreamTlsKey = file('upstreamTlsKey')
  if ((upstreamTlsCert === null) !== (upstreamTlsKey === null)) {
    throw new ConfigError(upstreamTlsCert === null ? 'upstreamTlsCert' : 'upstreamTlsKey', 'give --upstream-tls-cert and --upstream-tls-key together')
  }
  const servername = raw('upstreamTlsServername')
  const reuse = raw('clientDataTlsReuse')
  const timeout = raw('tlsHandshakeTimeout')
  const upstreamTls = raw('upstreamTls')
  const insecure = raw('upstreamTlsInsecure')
  return {
    tlsCert,
    tlsKey,
    clientTls,
    tlsCa,
    clientCert,
    upstreamTls: upstreamTls === undefined ? DEFAULTS.upstreamTls : parseChoice(upstreamTls, UPSTREAM_TLS_MODES),
    upstreamCa: file('upstreamCa'),
    upstreamTlsServername: servername === undefined ? null : configFileName(servername),
    upstreamTlsInsecure: insecure === undefined ? false : parseBoolean(insecure),
    upstreamTlsCert,
    upstreamTlsKey,
    clientDataTlsReuse: reuse === undefined ? DEFAULTS.clientDataTlsReuse : parseChoice(reuse, DATA_TLS_REUSE),
    tlsHandshakeTimeoutMs: timeout === undefined ? DEFAULTS.tlsHandshakeTimeoutMs : parseDurationSetting(timeout),
  }
}

// Flags that may be given more than once: each adds to a list.
const REPEATABLE: ReadonlySet<SettingKey> = new Set<SettingKey>(['listen', 'listenImplicitTls', 'tlsCert', 'tlsKey'])

function parseFlags(argv: readonly string[]): Map<SettingKey, Raw> {
  let values: Record<string, Array<string | boolean> | undefined>
  try {
    values = parseArgs({ args: [...argv], options: PARSE_ARGS_OPTIONS, strict: true }).values
  } catch (err) {
    // parseArgs reports unknown flags, missing values and stray words as TypeErrors with
    // ERR_PARSE_ARGS_* codes; anything else is a bug here and goes up unchanged.
    if (err instanceof TypeError && String((err as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS_')) {
      throw new ConfigError('arguments', `${err.message.replace(/\s*\n\s*/g, ' ')} (see ftp-pasv-proxy --help)`)
    }
    throw err
  }
  const flags = new Map<SettingKey, Raw>()
  for (const s of SETTINGS) {
    const given = values[s.flag]
    if (given === undefined) continue
    const origin: Origin = { key: s.key, from: `--${s.flag}` }
    const repeatable = REPEATABLE.has(s.key)
    if (!repeatable && given.length > 1) {
      throw new ConfigError(s.key, `--${s.flag} is given ${given.length} times; give it once`)
    }
    flags.set(s.key, { value: repeatable ? given : given[0], origin })
  }
  return flags
}

function fromEnv(env: Readonly<Record<string, string | undefined>>, key: SettingKey): Raw | undefined {
  const name = spec(key).env
  const value = env[name]
  return value === undefined || value === '' ? undefined : { value, origin: { key, from: name } }
}

function spec(key: SettingKey): (typeof SETTINGS)[number] {
  // The key type only admits keys of the table, so the row exists.
  return SETTINGS.find((s) => s.key === key) as (typeof SETTINGS)[number]
}

function configFileName(r: Raw): string {
  const name = expectString(r, 'a file name')
  if (name === '') throw fail(r.origin, 'is empty; give a file name')
  return name
}

function readConfigFile(path: string, readFile: (path: string) => string): Map<SettingKey, Raw> {
  // Decide the format before reading, so a wrong name fails the same whether or not it exists.
  const ext = extname(path).toLowerCase()
  if (ext !== '.json' && ext !== '.yaml' && ext !== '.yml') {
    throw new ConfigError('config', `${path}: unknown format "${ext}"; name the file .json, .yaml or .yml`)
  }
  let text: string
  try {
    text = readFile(path)
  } catch (err) {
    throw new ConfigError('config', `cannot read ${path}: ${(err as Error).message}`)
  }
  let doc: unknown
  try {
    // JSON is YAML 1.2 too, but JSON.parse gives JSON's own error messages for .json files.
    doc = ext === '.json' ? JSON.parse(text) : parseYaml(text)
  } catch (err) {
    // yaml's messages carry a code frame after the first line; the first line has line and column.
    const first = (err as Error).message.split('\n')[0]
    throw new ConfigError('config', `${path} is not valid ${ext === '.json' ? 'JSON' : 'YAML'}: ${first}`)
  }
  // An empty YAML file (or one with every line commented out) is null: no settings.
  if (doc === null) return new Map()
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError('config', `${path} must hold a mapping of settings, not ${describe(doc)}`)
  }
  const fileKeys: readonly string[] = SETTINGS.filter((s) => s.key !== 'config').map((s) => s.key)
  const settings = new Map<SettingKey, Raw>()
  for (const [key, value] of Object.entries(doc)) {
    if (!fileKeys.includes(key)) {
      throw new ConfigError(key, `unknown setting in ${path}; known settings: ${fileKeys.join(', ')}`)
    }
    const known = key as SettingKey
    settings.set(known, { value, origin: { key: known, from: path } })
  }
  return settings
}

function fail(origin: Origin, rule: string): ConfigError {
  return new ConfigError(origin.key, `${rule} (from ${origin.from})`)
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'string') return JSON.stringify(value)
  return typeof value === 'object' ? 'a mapping' : String(value)
}

function expectString(r: Raw, what: string): string {
  if (typeof r.value !== 'string') throw fail(r.origin, `expected ${what} as a string, got ${describe(r.value)}`)
  return r.value
}

function parseListen(r: Raw): readonly Endpoint[] {
  const items = typeof r.value === 'string' ? [r.value] : r.value
  if (!Array.isArray(items) || !items.every((i): i is string => typeof i === 'string')) {
    throw fail(r.origin, `expected HOST:PORT or a list of them, got ${describe(r.value)}`)
  }
  // One rule for every source: an item may itself be a comma-separated list.
  const texts = items.flatMap((i) => i.split(',')).map((t) => t.trim())
  if (texts.length === 0) throw fail(r.origin, 'is empty; give at least one HOST:PORT')
  const endpoints: Endpoint[] = []
  const seen = new Set<string>()
  for (const text of texts) {
    if (text === '') throw fail(r.origin, `has an empty entry in ${describe(r.value)}`)
    const endpoint = parseEndpoint(text, r.origin, true)
    // Port 0 asks for any free port, so the same host twice with port 0 is two listeners.
    const id = `${endpoint.host} ${endpoint.port}`
    if (endpoint.port !== 0 && seen.has(id)) throw fail(r.origin, `${text} is given twice`)
    seen.add(id)
    endpoints.push(endpoint)
  }
  return endpoints
}

/** HOST:PORT, IPv6 in brackets; the host is returned without brackets. */
function parseMetricsListen(r: Raw): Endpoint | null {
  const text = expectString(r, 'HOST:PORT or off').trim()
  return text === 'off' ? null : parseEndpoint(text, r.origin, true)
}

function parseEndpoint(text: string, origin: Origin, allowPortZero: boolean): Endpoint {
  const bracketed = /^\[([^\]]*)\]:([^:]*)$/.exec(text)
  let host: string
  let portText: string
  if (bracketed === null && text.startsWith('[')) {
    throw fail(origin, `${JSON.stringify(text)} is not [IPv6]:PORT`)
  }
  if (bracketed !== null) {
    // Both groups take part in every match of the pattern.
    host = bracketed[1] as string
    portText = bracketed[2] as string
    if (!ipaddr.IPv6.isValid(host)) throw fail(origin, `"${host}" in brackets is not an IPv6 address`)
  } else {
    const colon = text.lastIndexOf(':')
    if (colon < 0) throw fail(origin, `${JSON.stringify(text)} has no port; use HOST:PORT, IPv6 as [::1]:21`)
    host = text.slice(0, colon)
    portText = text.slice(colon + 1)
    if (host.includes(':')) {
      throw fail(origin, `${JSON.stringify(text)}: put an IPv6 address in brackets, e.g. [::1]:2121`)
    }
    checkHostName(host, origin)
  }
  if (!/^\d+$/.test(portText)) throw fail(origin, `port ${JSON.stringify(portText)} is not a number`)
  const port = Number(portText)
  if (port > 65535 || (port === 0 && !allowPortZero)) {
    throw fail(origin, `port ${port} is out of range 1-65535${allowPortZero ? ' (or 0 for any free port)' : ''}`)
  }
  return { host, port }
}

/** An IPv4 address in dotted decimal, or a host name (RFC 1123 2.1, plus `_` for container names). */
function checkHostName(host: string, origin: Origin): void {
  // RFC 3696 2: a top-level label is never all-numeric, so such a name is meant as an IPv4
  // address. Only the dotted-decimal form is accepted: getaddrinfo would also take "127.1",
  // "0x7f.1" or octal "010.0.0.1", which rarely mean what the writer thinks.
  const name = host.replace(/\.$/, '')
  const last = name.slice(name.lastIndexOf('.') + 1)
  if (/^(\d+|0x[0-9a-f]*)$/i.test(last)) {
    if (!ipaddr.IPv4.isValidFourPartDecimal(host)) {
      throw fail(origin, `${JSON.stringify(host)} is not an IPv4 address in dotted decimal (a.b.c.d)`)
    }
    return
  }
  const label = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/i
  if (host.length > 253 || !name.split('.').every((l) => label.test(l))) {
    throw fail(origin, `host ${JSON.stringify(host)} is not an IP address or host name`)
  }
}

function parsePortRange(r: Raw): Config['passivePorts'] {
  let min: unknown
  let max: unknown
  if (typeof r.value === 'string') {
    const m = /^(\d+)-(\d+)$/.exec(r.value)
    if (m === null) throw fail(r.origin, `${JSON.stringify(r.value)} is not a range; use MIN-MAX, e.g. 30000-30099`)
    min = Number(m[1])
    max = Number(m[2])
  } else if (typeof r.value === 'object' && r.value !== null && !Array.isArray(r.value)) {
    const extra = Object.keys(r.value).filter((k) => k !== 'min' && k !== 'max')
    if (extra.length > 0) throw fail(r.origin, `unknown key ${JSON.stringify(extra[0])}; use {min, max}`)
    ;({ min, max } = r.value as { min?: unknown; max?: unknown })
  } else {
    throw fail(r.origin, `expected "MIN-MAX" or {min, max}, got ${describe(r.value)}`)
  }
  for (const [name, port] of [['min', min], ['max', max]] as const) {
    if (port === undefined) throw fail(r.origin, `${name} is missing; use {min, max}`)
    if (!Number.isInteger(port)) throw fail(r.origin, `${name} ${describe(port)} is not a whole number`)
    // Port 0 would mean "any free port", which a pool that must advertise its ports cannot use.
    if ((port as number) < 1 || (port as number) > 65535) {
      throw fail(r.origin, `${name} port ${String(port)} is out of range 1-65535`)
    }
  }
  const lo = min as number
  const hi = max as number
  if (lo > hi) throw fail(r.origin, `min ${lo} is above max ${hi}`)
  const count = hi - lo + 1
  if (count > MAX_POOL_PORTS) {
    throw fail(r.origin, `${count} ports is more than the limit of ${MAX_POOL_PORTS} (each is a listener held open)`)
  }
  return { min: lo, max: hi }
}

function parseAdvertiseAddress(r: Raw): string {
  const text = expectString(r, 'auto or an IPv4 address')
  if (text === 'auto' || ipaddr.IPv4.isValidFourPartDecimal(text)) return text
  // RFC 959 4.1.2: a 227 reply carries h1,h2,h3,h4 only; an IPv6 client uses EPSV (RFC 2428),
  // whose reply has no address at all, so an IPv6 value could never be advertised.
  if (ipaddr.IPv6.isValid(text)) {
    throw fail(r.origin, `${JSON.stringify(text)} is IPv6, but a 227 reply carries only an IPv4 address`)
  }
  throw fail(r.origin, `${JSON.stringify(text)} is not an IP address or auto; use auto or a.b.c.d`)
}

function parseChoice<T extends string>(r: Raw, choices: readonly T[]): T {
  const text = expectString(r, `one of ${choices.join(', ')}`)
  const found = choices.find((c) => c === text)
  if (found === undefined) throw fail(r.origin, `${JSON.stringify(text)} is not one of ${choices.join(', ')}`)
  return found
}

/**
 * `250ms`, `5s`, `2m`, `1h`, or a whole number of seconds, as a string from any source or as a
 * number in a config file. One rule for numbers everywhere: a bare number means seconds.
 */
function parseDurationSetting(r: Raw): number {
  let ms: number
  if (typeof r.value === 'number') {
    if (!Number.isInteger(r.value)) throw fail(r.origin, `${r.value} is not a whole number of seconds`)
    ms = r.value * 1000
  } else if (typeof r.value === 'string') {
    const parsed = parseDuration(r.value)
    if (parsed === null) {
      throw fail(r.origin, `${JSON.stringify(r.value)} is not a duration; use 250ms, 5s, 2m, 1h or whole seconds`)
    }
    ms = parsed
  } else {
    throw fail(r.origin, `expected a duration such as "5s" or a number of seconds, got ${describe(r.value)}`)
  }
  if (ms <= 0) throw fail(r.origin, `${describe(r.value)} must be more than 0`)
  if (ms > MAX_DURATION_MS) throw fail(r.origin, `${describe(r.value)} is above the limit of 24h`)
  return ms
}

function parseLineLength(r: Raw): number {
  const n = typeof r.value === 'string' && /^\d+$/.test(r.value) ? Number(r.value) : r.value
  if (typeof n !== 'number' || !Number.isInteger(n)) {
    throw fail(r.origin, `${describe(r.value)} is not a whole number of bytes`)
  }
  if (n < MIN_LINE_BYTES || n > MAX_LINE_BYTES) {
    throw fail(r.origin, `${n} bytes is out of range ${MIN_LINE_BYTES}-${MAX_LINE_BYTES}`)
  }
  return n
}

/** A whole number from 1 to 1,000,000: a limit on sessions. */
function parseCount(r: Raw): number {
  const n = typeof r.value === 'string' && /^\d+$/.test(r.value) ? Number(r.value) : r.value
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1_000_000) {
    throw fail(r.origin, `${describe(r.value)} is not a whole number from 1 to 1000000`)
  }
  return n
}

/** A prefix length for IPv6 client addresses, 1-128 bits. */
function parsePrefixLength(r: Raw): number {
  const n = typeof r.value === 'string' && /^\d+$/.test(r.value) ? Number(r.value) : r.value
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 128) {
    throw fail(r.origin, `${describe(r.value)} is not a prefix length from 1 to 128 bits`)
  }
  return n
}

/** true or false: a boolean in a file, the words in any source (a switch flag gives true). */
function parseBoolean(r: Raw): boolean {
  if (r.value === true || r.value === 'true') return true
  if (r.value === false || r.value === 'false') return false
  throw fail(r.origin, `${describe(r.value)} is not true or false`)
}

/**
 * `none` (an empty list: only the control peer is dialled for data) or CIDR,... as for
 * --allow-clients. In a file also a list, where [] means none too. An empty string is refused
 * rather than read as none: unset (the default rule) and none are both plausible readings.
 */
function parseDataNetworks(r: Raw): readonly string[] {
  if (r.value === 'none') return []
  if (Array.isArray(r.value) && r.value.length === 0) return []
  if (typeof r.value === 'string' && r.value.trim() === '') {
    throw fail(r.origin, 'is empty; give none or CIDR,... (leave it unset for the private-range rule)')
  }
  const items = typeof r.value === 'string' ? r.value.split(',') : r.value
  if (Array.isArray(items) && items.some((i) => typeof i === 'string' && i.trim() === 'none')) {
    throw fail(r.origin, `${describe(r.value)}: none cannot be combined with networks`)
  }
  const cidrs = parseCidrs(r)
  if (cidrs.length === 0) throw fail(r.origin, `${describe(r.value)} names no network; give none or CIDR,...`)
  return cidrs
}

/** `10.0.0.0/8,2001:db8::/32`, a list in a file, or empty for everyone; checked with ipaddr.js. */
function parseCidrs(r: Raw): readonly string[] {
  const items = typeof r.value === 'string' ? r.value.split(',') : r.value
  if (!Array.isArray(items) || !items.every((i): i is string => typeof i === 'string')) {
    throw fail(r.origin, `expected CIDR,... or a list of CIDRs, got ${describe(r.value)}`)
  }
  const cidrs = items.map((i) => i.trim()).filter((i) => i !== '')
  for (const cidr of cidrs) {
    try {
      ipaddr.parseCIDR(cidr)
    } catch {
      throw fail(r.origin, `${JSON.stringify(cidr)} is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32`)
    }
  }
  return cidrs
}

// A pool port that is also a listen port could never be bound by the pool (or vice versa).
function checkPoolAgainstListen(config: Config): void {
  const { min, max } = config.passivePorts
  const clash = [...config.listen, ...config.listenImplicitTls].find((l) => l.port >= min && l.port <= max)
  if (clash !== undefined) {
    throw new ConfigError('passivePorts', `pool ${min}-${max} includes listen port ${clash.port}; use separate ports`)
  }
}

// HOST:PORT as the flags take it; it lives in net/ so that diagnose can use it too.
export { formatEndpoint }

/** The --help text. */
export function helpText(): string {
  const rows = SETTINGS.map((s) => {
    const fileKey = s.key === 'config' ? '(none)' : s.key
    const where = `env ${s.env}, file key ${fileKey}, default ${defaultText(s.key)}`
    const head = isSwitch(s) ? `  --${s.flag}` : `  --${s.flag} ${s.arg}`
    return [head, ...wrap(s.help, 72), ...wrap(where, 72)].join('\n      ')
  })
  return [
    'Usage:',
    '  ftp-pasv-proxy [proxy] --upstream HOST:PORT [options]',
    '  ftp-pasv-proxy diagnose ftp://[user[:password]@]host[:port][/dir]',
    '                          [--password-env VAR] [--json] [--timeout 10s]',
    '  ftp-pasv-proxy demo',
    '  ftp-pasv-proxy --help',
    '',
    'proxy     relay FTP to the upstream server, rewriting 227/229 passive replies',
    '          so clients reach servers that advertise an unreachable address',
    "diagnose  check an FTP server's passive replies (ftp-pasv-proxy diagnose --help)",
    'demo      run a local demonstration of the proxy',
    '',
    'Options (proxy):',
    ...rows,
    '',
    'Each setting is taken from its flag, else its environment variable, else',
    'the config file, else the default. An empty environment variable counts',
    'as unset.',
    '',
    'DURATION is 250ms, 5s, 2m, 1h or a whole number of seconds; more than 0',
    'and at most 24h.',
    '',
    'The config file is JSON (.json) or YAML (.yaml, .yml): a mapping of the',
    'file keys above, with values written as on the command line. In addition',
    'listen may be a list, passivePorts may be {min, max}, maxLineLength may be',
    'a number, and a duration may be a number meaning seconds. Quote IPv6',
    'listen addresses in YAML: "[::1]:2121". Unknown keys are an error.',
    'allowClients and upstreamDataNetworks may be lists, the counts numbers',
    'and upstreamDataLowPorts true or false.',
    '',
  ].join('\n')
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else {
      line = line === '' ? word : `${line} ${word}`
    }
  }
  lines.push(line)
  return lines
}

// Written from DEFAULTS, so the help cannot show a stale default.
function defaultText(key: SettingKey): string {
  const d = DEFAULTS
  switch (key) {
    case 'listen':
      return d.listen.map(formatEndpoint).join(',')
    case 'listenImplicitTls':
      return 'none'
    case 'upstream':
      return 'none, required'
    case 'passivePorts':
      return `${d.passivePorts.min}-${d.passivePorts.max}`
    case 'advertiseAddress':
      return d.advertiseAddress
    case 'upstreamDataAddress':
      return d.upstreamDataAddress
    case 'activeMode':
      return d.activeMode
    case 'connectTimeout':
      return formatDuration(d.connectTimeoutMs)
    case 'dataAcceptTimeout':
      return formatDuration(d.dataAcceptTimeoutMs)
    case 'idleTimeout':
      return formatDuration(d.idleTimeoutMs)
    case 'shutdownGrace':
      return formatDuration(d.shutdownGraceMs)
    case 'greetingTimeout':
      return formatDuration(d.greetingTimeoutMs)
    case 'maxSessions':
      return String(d.maxSessions)
    case 'maxSessionsPerClient':
      return String(d.maxSessionsPerClient)
    case 'dataIdleTimeout':
      return formatDuration(d.dataIdleTimeoutMs)
    case 'closeTimeout':
      return formatDuration(d.closeTimeoutMs)
    case 'maxLeasesPerSession':
      return String(d.maxLeasesPerSession)
    case 'maxLeasesPerClient':
      return String(d.maxLeasesPerClient)
    case 'clientIpv6Prefix':
      return String(d.clientIpv6Prefix)
    case 'upstreamDataNetworks':
      return d.upstreamDataNetworks === null ? 'unset (private ranges)' : d.upstreamDataNetworks.join(',') || 'none'
    case 'upstreamDataLowPorts':
      return String(d.upstreamDataLowPorts)
    case 'allowClients':
      return d.allowClients.length === 0 ? 'everyone' : d.allowClients.join(',')
    case 'maxLineLength':
      return String(d.maxLineBytes)
    case 'tlsCert':
    case 'tlsKey':
      return 'none'
    case 'clientTls':
      return 'optional with a certificate, off without'
    case 'tlsCa':
    case 'upstreamTlsCert':
    case 'upstreamTlsKey':
      return 'none'
    case 'clientCert':
      return d.clientCert
    case 'upstreamTls':
      return d.upstreamTls
    case 'upstreamCa':
      return "the system's"
    case 'upstreamTlsServername':
      return 'the upstream host name'
    case 'upstreamTlsInsecure':
      return String(d.upstreamTlsInsecure)
    case 'clientDataTlsReuse':
      return d.clientDataTlsReuse
    case 'tlsHandshakeTimeout':
      return formatDuration(d.tlsHandshakeTimeoutMs)
    case 'config':
      return d.configFile ?? 'none'
    case 'logLevel':
      return d.logLevel
    case 'metricsListen':
      return d.metricsListen === null ? 'off' : formatEndpoint(d.metricsListen)
    case 'statusPage':
      return `${d.statusPage} (on when --metrics-listen is loopback)`
    case 'statusShowClients':
      return String(d.statusShowClients)
  }
}

const EPHEMERAL_RANGE_FILE = '/proc/sys/net/ipv4/ip_local_port_range'

/**
 * The part of the passive pool inside the kernel's ephemeral port range, or null when there is
 * none or procText is not a range. The kernel takes source ports for outgoing connections (this
 * proxy's own connections to the server included) from that range, so a pool port inside it
 * may be in use when the pool comes to bind it: worth a warning at startup, not a refusal.
 * @param procText the contents of /proc/sys/net/ipv4/ip_local_port_range, e.g. "32768\t60999\n"
 */
export function ephemeralOverlap(
  pool: { readonly min: number; readonly max: number },
  procText: string,
): { min: number; max: number } | null {
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(procText)
  if (m === null) return null
  const min = Math.max(pool.min, Number(m[1]))
  const max = Math.min(pool.max, Number(m[2]))
  return min <= max ? { min, max } : null
}

/**
 * The kernel's ephemeral port range as text, or null where it cannot be read (not Linux, no
 * /proc). Linux applies the ipv4 setting to IPv6 too. The path is a parameter for tests.
 */
export function readEphemeralRange(path: string = EPHEMERAL_RANGE_FILE): string | null {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return null
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}
