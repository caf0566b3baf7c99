import t from 'tap'
import fc from 'fast-check'
import { fileURLToPath } from 'node:url'
import { DEFAULTS, ephemeralOverlap, formatEndpoint, helpText, loadConfig, readEphemeralRange } from '../src/config.js'
import type { Config } from '../src/config-types.js'
import { ConfigError } from '../src/errors.js'

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/config/${name}`, import.meta.url))
const UP = ['--upstream', '192.0.2.1:21']
const noFile = (): string => {
  throw new Error('no config file was asked for')
}
const load = (argv: readonly string[], env: Record<string, string> = {}): Config => loadConfig(argv, env, noFile)

function isDeepFrozen(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true
  return Object.isFrozen(value) && Object.values(value).every(isDeepFrozen)
}

t.test('defaults apply to everything but the upstream', async (t) => {
  const config = load(UP)
  t.same(config, { ...DEFAULTS, upstream: { host: '192.0.2.1', port: 21 } })
  t.same(DEFAULTS, {
    listen: [{ host: '127.0.0.1', port: 2121 }],
    listenImplicitTls: [],
    passivePorts: { min: 30000, max: 30099 },
    advertiseAddress: 'auto',
    upstreamDataAddress: 'auto',
    activeMode: 'passive',
    connectTimeoutMs: 5000,
    dataAcceptTimeoutMs: 30000,
    idleTimeoutMs: 900000,
    shutdownGraceMs: 30000,
    greetingTimeoutMs: 30000,
    dataIdleTimeoutMs: 600000,
    closeTimeoutMs: 2000,
    maxLeasesPerSession: 4,
    maxLeasesPerClient: 50,
    clientIpv6Prefix: 64,
    upstreamDataNetworks: null,
    upstreamDataLowPorts: false,
    maxSessions: 2000,
    maxSessionsPerClient: 200,
    allowClients: [],
    maxLineBytes: 8192,
    logLevel: 'info',
    metricsListen: { host: '127.0.0.1', port: 9464 },
    statusPage: 'auto',
    statusShowClients: false,
    tlsCert: [],
    tlsKey: [],
    clientTls: 'off',
    tlsCa: null,
    clientCert: 'none',
    upstreamTls: 'mirror',
    upstreamCa: null,
    upstreamTlsServername: null,
    upstreamTlsInsecure: false,
    upstreamTlsCert: null,
    upstreamTlsKey: null,
    clientDataTlsReuse: 'optional',
    tlsHandshakeTimeoutMs: 10000,
    configFile: null,
  })
  t.ok(isDeepFrozen(DEFAULTS))
})

// [flags after --upstream, the settings they change]
const flagCases: ReadonlyArray<readonly [readonly string[], Partial<Config>]> = [
  [['--listen', '0.0.0.0:21'], { listen: [{ host: '0.0.0.0', port: 21 }] }],
  [
    ['--listen', '[::1]:2121', '--listen', 'localhost:0'],
    { listen: [{ host: '::1', port: 2121 }, { host: 'localhost', port: 0 }] },
  ],
  [
    ['--listen', '127.0.0.1:0, 127.0.0.1:0'],
    { listen: [{ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: 0 }] },
  ],
  [['--listen=[fe80::1%eth0]:21'], { listen: [{ host: 'fe80::1%eth0', port: 21 }] }],
  [['--passive-ports', '50000-50000'], { passivePorts: { min: 50000, max: 50000 } }],
  [['--passive-ports', '20001-30000'], { passivePorts: { min: 20001, max: 30000 } }],
  [['--passive-ports', '2122-12121', '--listen', '127.0.0.1:2121'], { passivePorts: { min: 2122, max: 12121 }, listen: [{ host: '127.0.0.1', port: 2121 }] }],
  [['--advertise-address', '203.0.113.7'], { advertiseAddress: '203.0.113.7' }],
  [['--upstream-data-address', 'control'], { upstreamDataAddress: 'control' }],
  [['--upstream-data-address', 'advertised'], { upstreamDataAddress: 'advertised' }],
  [['--connect-timeout', '250ms'], { connectTimeoutMs: 250 }],
  [['--connect-timeout', '7'], { connectTimeoutMs: 7000 }],
  [['--data-accept-timeout', '2m'], { dataAcceptTimeoutMs: 120000 }],
  [['--idle-timeout', '1h'], { idleTimeoutMs: 3600000 }],
  [['--idle-timeout', '24h'], { idleTimeoutMs: 86400000 }],
  [['--shutdown-grace', '1ms'], { shutdownGraceMs: 1 }],
  [['--max-line-length', '512'], { maxLineBytes: 512 }],
  [['--max-line-length', '1048576'], { maxLineBytes: 1048576 }],
  [['--log-level', 'silent'], { logLevel: 'silent' }],
  [['--log-level=trace'], { logLevel: 'trace' }],
  [['--data-idle-timeout', '30s'], { dataIdleTimeoutMs: 30000 }],
  [['--data-idle-timeout', '24h'], { dataIdleTimeoutMs: 86400000 }],
  [['--close-timeout', '100ms'], { closeTimeoutMs: 100 }],
  [['--close-timeout', '5'], { closeTimeoutMs: 5000 }],
  [['--max-leases-per-session', '1'], { maxLeasesPerSession: 1 }],
  [['--max-leases-per-client', '1000000'], { maxLeasesPerClient: 1000000 }],
  [['--client-ipv6-prefix', '128'], { clientIpv6Prefix: 128 }],
  [['--client-ipv6-prefix', '1'], { clientIpv6Prefix: 1 }],
  [['--client-ipv6-prefix=48'], { clientIpv6Prefix: 48 }],
  [['--upstream-data-networks', 'none'], { upstreamDataNetworks: [] }],
  [['--upstream-data-networks', '169.254.0.0/16'], { upstreamDataNetworks: ['169.254.0.0/16'] }],
  [['--upstream-data-networks', '172.16.40.0/24, fd00::/8,'], { upstreamDataNetworks: ['172.16.40.0/24', 'fd00::/8'] }],
  [['--upstream-data-low-ports'], { upstreamDataLowPorts: true }],
  [['--status-page', 'on'], { statusPage: 'on' }],
  [['--status-page=off'], { statusPage: 'off' }],
  [['--status-show-clients'], { statusShowClients: true }],
]

t.test('each flag', async (t) => {
  for (const [flags, expected] of flagCases) {
    t.same(load([...UP, ...flags]), { ...DEFAULTS, upstream: { host: '192.0.2.1', port: 21 }, ...expected }, flags.join(' '))
  }
  t.same(load(['--upstream', '[2001:db8::1]:2100']).upstream, { host: '2001:db8::1', port: 2100 })
  t.same(load(['--upstream', 'ftp-1.example.com.:21']).upstream, { host: 'ftp-1.example.com.', port: 21 })
  t.same(load(['--upstream', 'my_ftp_1:21']).upstream, { host: 'my_ftp_1', port: 21 }, 'compose service name')
})

t.test('environment', async (t) => {
  const config = load([], {
    FTP_PROXY_LISTEN: '127.0.0.1:0,[::1]:0',
    FTP_PROXY_UPSTREAM: 'ftp.example.com:21',
    FTP_PROXY_PASSIVE_PORTS: '40000-40099',
    FTP_PROXY_ADVERTISE_ADDRESS: '198.51.100.1',
    FTP_PROXY_UPSTREAM_DATA_ADDRESS: 'advertised',
    FTP_PROXY_CONNECT_TIMEOUT: '1s',
    FTP_PROXY_DATA_ACCEPT_TIMEOUT: '2s',
    FTP_PROXY_IDLE_TIMEOUT: '3',
    FTP_PROXY_SHUTDOWN_GRACE: '4m',
    FTP_PROXY_MAX_LINE_LENGTH: '1024',
    FTP_PROXY_LOG_LEVEL: 'debug',
    FTP_PROXY_METRICS_LISTEN: 'off',
    FTP_PROXY_DATA_IDLE_TIMEOUT: '1m',
    FTP_PROXY_CLOSE_TIMEOUT: '500ms',
    FTP_PROXY_MAX_LEASES_PER_SESSION: '2',
    FTP_PROXY_MAX_LEASES_PER_CLIENT: '20',
    FTP_PROXY_CLIENT_IPV6_PREFIX: '56',
    FTP_PROXY_UPSTREAM_DATA_NETWORKS: '10.0.0.0/8,198.51.100.0/24',
    FTP_PROXY_UPSTREAM_DATA_LOW_PORTS: 'true',
    FTP_PROXY_STATUS_PAGE: 'off',
    FTP_PROXY_STATUS_SHOW_CLIENTS: 'true',
  })
  t.same(config, {
    listen: [
      { host: '127.0.0.1', port: 0 },
      { host: '::1', port: 0 },
    ],
    upstream: { host: 'ftp.example.com', port: 21 },
    listenImplicitTls: [],
    passivePorts: { min: 40000, max: 40099 },
    advertiseAddress: '198.51.100.1',
    upstreamDataAddress: 'advertised',
    activeMode: 'passive',
    connectTimeoutMs: 1000,
    dataAcceptTimeoutMs: 2000,
    idleTimeoutMs: 3000,
    shutdownGraceMs: 240000,
    greetingTimeoutMs: 30000,
    dataIdleTimeoutMs: 60000,
    closeTimeoutMs: 500,
    maxLeasesPerSession: 2,
    maxLeasesPerClient: 20,
    clientIpv6Prefix: 56,
    upstreamDataNetworks: ['10.0.0.0/8', '198.51.100.0/24'],
    upstreamDataLowPorts: true,
    maxSessions: 2000,
    maxSessionsPerClient: 200,
    allowClients: [],
    maxLineBytes: 1024,
    logLevel: 'debug',
    metricsListen: null,
    statusPage: 'off',
    statusShowClients: true,
    tlsCert: [],
    tlsKey: [],
    clientTls: 'off',
    tlsCa: null,
    clientCert: 'none',
    upstreamTls: 'mirror',
    upstreamCa: null,
    upstreamTlsServername: null,
    upstreamTlsInsecure: false,
    upstreamTlsCert: null,
    upstreamTlsKey: null,
    clientDataTlsReuse: 'optional',
    tlsHandshakeTimeoutMs: 10000,
    configFile: null,
  })
  t.equal(load(UP, { FTP_PROXY_LOG_LEVEL: '' }).logLevel, 'info', 'an empty variable counts as unset')
  t.equal(load(UP, { FTP_PROXY_UPSTREAM_DATA_NETWORKS: '' }).upstreamDataNetworks, null, 'empty: the default rule, not none')
  t.same(load(UP, { FTP_PROXY_UPSTREAM_DATA_NETWORKS: 'none' }).upstreamDataNetworks, [])
  t.equal(load(UP, { FTP_PROXY_UPSTREAM_DATA_LOW_PORTS: 'false' }).upstreamDataLowPorts, false)
})

t.test('config files', async (t) => {
  const json = loadConfig(['--config', fixture('full.json')], {})
  t.same(json, {
    listen: [{ host: '0.0.0.0', port: 2121 }],
    upstream: { host: 'ftp.example.com', port: 2100 },
    listenImplicitTls: [],
    passivePorts: { min: 40000, max: 40009 },
    advertiseAddress: '203.0.113.7',
    upstreamDataAddress: 'control',
    activeMode: 'deny',
    connectTimeoutMs: 250,
    dataAcceptTimeoutMs: 10000,
    idleTimeoutMs: 120000,
    shutdownGraceMs: 3600000,
    greetingTimeoutMs: 30000,
    dataIdleTimeoutMs: 600000,
    closeTimeoutMs: 2000,
    maxLeasesPerSession: 4,
    maxLeasesPerClient: 50,
    clientIpv6Prefix: 64,
    upstreamDataNetworks: null,
    upstreamDataLowPorts: false,
    maxSessions: 2000,
    maxSessionsPerClient: 200,
    allowClients: [],
    maxLineBytes: 4096,
    logLevel: 'debug',
    metricsListen: { host: '127.0.0.1', port: 0 },
    statusPage: 'on',
    statusShowClients: true,
    tlsCert: [],
    tlsKey: [],
    clientTls: 'off',
    tlsCa: null,
    clientCert: 'none',
    upstreamTls: 'mirror',
    upstreamCa: null,
    upstreamTlsServername: null,
    upstreamTlsInsecure: false,
    upstreamTlsCert: null,
    upstreamTlsKey: null,
    clientDataTlsReuse: 'optional',
    tlsHandshakeTimeoutMs: 10000,
    configFile: fixture('full.json'),
  })
  const yaml = loadConfig([], { FTP_PROXY_CONFIG: fixture('full.yaml') })
  t.same(yaml, {
    listen: [
      { host: '127.0.0.1', port: 0 },
      { host: '::1', port: 2121 },
    ],
    upstream: { host: '192.0.2.10', port: 21 },
    listenImplicitTls: [],
    passivePorts: { min: 50000, max: 50099 },
    advertiseAddress: 'auto',
    upstreamDataAddress: 'advertised',
    activeMode: 'passive',
    connectTimeoutMs: 3000,
    dataAcceptTimeoutMs: 45000,
    idleTimeoutMs: 600000,
    shutdownGraceMs: 5000,
    greetingTimeoutMs: 30000,
    dataIdleTimeoutMs: 600000,
    closeTimeoutMs: 2000,
    maxLeasesPerSession: 4,
    maxLeasesPerClient: 50,
    clientIpv6Prefix: 64,
    upstreamDataNetworks: null,
    upstreamDataLowPorts: false,
    maxSessions: 2000,
    maxSessionsPerClient: 200,
    allowClients: [],
    maxLineBytes: 2048,
    logLevel: 'warn',
    metricsListen: { host: '::1', port: 9465 },
    statusPage: 'auto',
    statusShowClients: false,
    tlsCert: [],
    tlsKey: [],
    clientTls: 'off',
    tlsCa: null,
    clientCert: 'none',
    upstreamTls: 'mirror',
    upstreamCa: null,
    upstreamTlsServername: null,
    upstreamTlsInsecure: false,
    upstreamTlsCert: null,
    upstreamTlsKey: null,
    clientDataTlsReuse: 'optional',
    tlsHandshakeTimeoutMs: 10000,
    configFile: fixture('full.yaml'),
  })
  t.same(
    loadConfig([...UP, '--config', fixture('commented-out.yaml')], {}),
    { ...DEFAULTS, upstream: { host: '192.0.2.1', port: 21 }, configFile: fixture('commented-out.yaml') },
    'a file with every line commented out sets nothing',
  )
  const asked: string[] = []
  const config = loadConfig(['--config', 'proxy.yml'], {}, (path) => {
    asked.push(path)
    return 'upstream: 192.0.2.5:21\n'
  })
  t.same(asked, ['proxy.yml'], 'the injected reader gets the path')
  t.same(config.upstream, { host: '192.0.2.5', port: 21 })
})

// The settings of the hostile-peer limits and the data-address policy, as a file may write them.
const fileCases: ReadonlyArray<readonly [string, Partial<Config>]> = [
  ['dataIdleTimeout: 90', { dataIdleTimeoutMs: 90000 }],
  ['dataIdleTimeout: 2m', { dataIdleTimeoutMs: 120000 }],
  ['closeTimeout: 1', { closeTimeoutMs: 1000 }],
  ['maxLeasesPerSession: 8', { maxLeasesPerSession: 8 }],
  ['maxLeasesPerClient: "7"', { maxLeasesPerClient: 7 }],
  ['clientIpv6Prefix: 48', { clientIpv6Prefix: 48 }],
  ['upstreamDataNetworks: none', { upstreamDataNetworks: [] }],
  ['upstreamDataNetworks: []', { upstreamDataNetworks: [] }],
  ['upstreamDataNetworks: [169.254.169.0/24, "2001:db8::/32"]', { upstreamDataNetworks: ['169.254.169.0/24', '2001:db8::/32'] }],
  ['upstreamDataNetworks: 10.0.0.0/8', { upstreamDataNetworks: ['10.0.0.0/8'] }],
  ['upstreamDataLowPorts: true', { upstreamDataLowPorts: true }],
  ['upstreamDataLowPorts: false', { upstreamDataLowPorts: false }],
]

t.test('the data limits and data-address settings in a file', async (t) => {
  for (const [text, expected] of fileCases) {
    const config = loadConfig(['--config', 'f.yaml'], {}, () => `upstream: 192.0.2.1:21\n${text}\n`)
    t.same(config, { ...DEFAULTS, upstream: { host: '192.0.2.1', port: 21 }, configFile: 'f.yaml', ...expected }, text)
  }
  const json = loadConfig(['--config', 'f.json'], {}, () => '{"upstream": "192.0.2.1:21", "upstreamDataLowPorts": true, "upstreamDataNetworks": ["10.1.0.0/16"]}')
  t.same([json.upstreamDataLowPorts, json.upstreamDataNetworks], [true, ['10.1.0.0/16']], 'JSON')
  // A flag over the file, as for every setting.
  const both = loadConfig(['--config', 'f.yaml', '--upstream-data-networks', 'none'], {}, () => 'upstream: 192.0.2.1:21\nupstreamDataNetworks: 10.0.0.0/8\n')
  t.same(both.upstreamDataNetworks, [])
})

t.test('precedence: flags, then environment, then file, then defaults', async (t) => {
  const file = fixture('partial.yml') // connectTimeout 7s, logLevel error, listen 127.0.0.1:7000
  const env = { FTP_PROXY_CONNECT_TIMEOUT: '8s', FTP_PROXY_LOG_LEVEL: 'warn', FTP_PROXY_LISTEN: '127.0.0.1:8000' }
  const flags = ['--connect-timeout', '9s', '--log-level', 'trace', '--listen', '127.0.0.1:9000']
  const pick = (c: Config) => [c.connectTimeoutMs, c.logLevel, c.listen[0]?.port]

  t.same(pick(loadConfig(UP, {})), [5000, 'info', 2121], 'defaults')
  t.same(pick(loadConfig(['--config', file], {})), [7000, 'error', 7000], 'file over defaults')
  t.same(pick(loadConfig(['--config', file], env)), [8000, 'warn', 8000], 'environment over file')
  t.same(pick(loadConfig(['--config', file, ...flags], env)), [9000, 'trace', 9000], 'flags over environment')
  t.same(pick(loadConfig(['--connect-timeout', '9s'], { ...env, FTP_PROXY_CONFIG: file })), [9000, 'warn', 8000], 'mixed')
  t.same(loadConfig(['--config', file], {}).upstream, { host: '192.0.2.1', port: 21 }, 'upstream from the file')
  t.same(loadConfig(['--config', file], { FTP_PROXY_UPSTREAM: '192.0.2.2:21' }).upstream.host, '192.0.2.2')

  // The file's path: the flag over the variable.
  const config = loadConfig(['--config', fixture('partial.yml')], { FTP_PROXY_CONFIG: fixture('no-such.yaml') })
  t.equal(config.configFile, fixture('partial.yml'))
})

// [what, argv, env, setting, message]
const bad: ReadonlyArray<readonly [string, readonly string[], Record<string, string>, string, RegExp]> = [
  ['no upstream', [], {}, 'upstream', /^upstream: required \(HOST:PORT of the FTP server/],
  ['upstream without port', ['--upstream', 'ftp.example.com'], {}, 'upstream', /"ftp\.example\.com" has no port/],
  ['upstream port 0', ['--upstream', '192.0.2.1:0'], {}, 'upstream', /port 0 is out of range 1-65535 \(from --upstream\)$/],
  ['upstream port text', ['--upstream', '192.0.2.1:ftp'], {}, 'upstream', /port "ftp" is not a number/],
  ['upstream bad host', ['--upstream', 'ftp host:21'], {}, 'upstream', /host "ftp host" is not an IP address or host name/],
  ['upstream IPv4 shorthand', ['--upstream', '127.1:21'], {}, 'upstream', /"127\.1" is not an IPv4 address in dotted decimal/],
  ['upstream octal', ['--upstream', '010.0.0.1:21'], {}, 'upstream', /not an IPv4 address in dotted decimal/],
  ['upstream twice', [...UP, '--upstream', '192.0.2.2:21'], {}, 'upstream', /--upstream is given 2 times; give it once/],
  ['IPv6 without brackets', [...UP, '--listen', '::1:2121'], {}, 'listen', /put an IPv6 address in brackets, e\.g\. \[::1\]:2121/],
  ['brackets without port', [...UP, '--listen', '[::1]'], {}, 'listen', /"\[::1\]" is not \[IPv6\]:PORT/],
  ['IPv4 in brackets', [...UP, '--listen', '[1.2.3.4]:21'], {}, 'listen', /"1\.2\.3\.4" in brackets is not an IPv6 address/],
  ['listen port too big', [...UP, '--listen', '0.0.0.0:70000'], {}, 'listen', /^listen: port 70000 is out of range 1-65535 \(or 0 for any free port\)/],
  ['listen empty entry', UP, { FTP_PROXY_LISTEN: '127.0.0.1:21,' }, 'listen', /has an empty entry.*\(from FTP_PROXY_LISTEN\)$/],
  ['listen twice', [...UP, '--listen', '127.0.0.1:21', '--listen', '127.0.0.1:21'], {}, 'listen', /127\.0\.0\.1:21 is given twice/],
  ['pool min above max', [...UP, '--passive-ports', '50100-50000'], {}, 'passivePorts', /^passivePorts: min 50100 is above max 50000 \(from --passive-ports\)$/],
  ['pool port 0', [...UP, '--passive-ports', '0-10'], {}, 'passivePorts', /min port 0 is out of range 1-65535/],
  ['pool port too big', [...UP, '--passive-ports', '65000-65536'], {}, 'passivePorts', /max port 65536 is out of range 1-65535/],
  ['pool too large', [...UP, '--passive-ports', '1-10001'], {}, 'passivePorts', /10001 ports is more than the limit of 10000/],
  ['pool not a range', UP, { FTP_PROXY_PASSIVE_PORTS: '30000:30099' }, 'passivePorts', /"30000:30099" is not a range; use MIN-MAX/],
  ['pool holds a listen port', [...UP, '--listen', '0.0.0.0:30050'], {}, 'passivePorts', /pool 30000-30099 includes listen port 30050/],
  ['advertise not an IP', [...UP, '--advertise-address', 'abc'], {}, 'advertiseAddress', /^advertiseAddress: "abc" is not an IP address or auto/],
  ['advertise IPv6', [...UP, '--advertise-address', '2001:db8::1'], {}, 'advertiseAddress', /is IPv6, but a 227 reply carries only an IPv4 address/],
  ['upstream data address', [...UP, '--upstream-data-address', 'server'], {}, 'upstreamDataAddress', /"server" is not one of auto, advertised, control/],
  ['duration typo', [...UP, '--connect-timeout', '5x'], {}, 'connectTimeout', /^connectTimeout: "5x" is not a duration; use 250ms, 5s, 2m/],
  ['duration fraction', UP, { FTP_PROXY_DATA_ACCEPT_TIMEOUT: '1.5s' }, 'dataAcceptTimeout', /"1\.5s" is not a duration.*\(from FTP_PROXY_DATA_ACCEPT_TIMEOUT\)$/],
  ['duration zero', [...UP, '--idle-timeout', '0ms'], {}, 'idleTimeout', /"0ms" must be more than 0/],
  ['duration too long', [...UP, '--shutdown-grace', '1441m'], {}, 'shutdownGrace', /"1441m" is above the limit of 24h/],
  ['line length too small', [...UP, '--max-line-length', '511'], {}, 'maxLineLength', /511 bytes is out of range 512-1048576/],
  ['line length not a number', [...UP, '--max-line-length', '8k'], {}, 'maxLineLength', /"8k" is not a whole number of bytes/],
  ['log level', [...UP, '--log-level', 'verbose'], {}, 'logLevel', /"verbose" is not one of fatal, error, warn, info, debug, trace, silent/],
  ['data idle zero', [...UP, '--data-idle-timeout', '0'], {}, 'dataIdleTimeout', /^dataIdleTimeout: "0" must be more than 0 \(from --data-idle-timeout\)$/],
  ['data idle unit', UP, { FTP_PROXY_DATA_IDLE_TIMEOUT: '10min' }, 'dataIdleTimeout', /"10min" is not a duration.*\(from FTP_PROXY_DATA_IDLE_TIMEOUT\)$/],
  ['close timeout too long', [...UP, '--close-timeout', '25h'], {}, 'closeTimeout', /^closeTimeout: "25h" is above the limit of 24h/],
  ['leases per session zero', [...UP, '--max-leases-per-session', '0'], {}, 'maxLeasesPerSession', /^maxLeasesPerSession: "0" is not a whole number from 1 to 1000000/],
  ['leases per client text', UP, { FTP_PROXY_MAX_LEASES_PER_CLIENT: 'lots' }, 'maxLeasesPerClient', /"lots" is not a whole number from 1 to 1000000 \(from FTP_PROXY_MAX_LEASES_PER_CLIENT\)$/],
  ['ipv6 prefix 0', [...UP, '--client-ipv6-prefix', '0'], {}, 'clientIpv6Prefix', /^clientIpv6Prefix: "0" is not a prefix length from 1 to 128 bits/],
  ['ipv6 prefix 129', [...UP, '--client-ipv6-prefix', '129'], {}, 'clientIpv6Prefix', /"129" is not a prefix length from 1 to 128 bits/],
  ['ipv6 prefix slash', [...UP, '--client-ipv6-prefix', '/64'], {}, 'clientIpv6Prefix', /"\/64" is not a prefix length/],
  ['data networks not a CIDR', [...UP, '--upstream-data-networks', '169.254.169.254'], {}, 'upstreamDataNetworks', /^upstreamDataNetworks: "169\.254\.169\.254" is not a CIDR such as 10\.0\.0\.0\/8/],
  ['data networks bad bits', UP, { FTP_PROXY_UPSTREAM_DATA_NETWORKS: '10.0.0.0/33' }, 'upstreamDataNetworks', /"10\.0\.0\.0\/33" is not a CIDR.*\(from FTP_PROXY_UPSTREAM_DATA_NETWORKS\)$/],
  ['data networks none and more', [...UP, '--upstream-data-networks', 'none,10.0.0.0/8'], {}, 'upstreamDataNetworks', /none cannot be combined with networks/],
  ['data networks empty flag', [...UP, '--upstream-data-networks='], {}, 'upstreamDataNetworks', /is empty; give none or CIDR,\.\.\. \(leave it unset for the private-range rule\)/],
  ['data networks only commas', [...UP, '--upstream-data-networks', ',,'], {}, 'upstreamDataNetworks', /",," names no network; give none or CIDR/],
  ['low ports env', UP, { FTP_PROXY_UPSTREAM_DATA_LOW_PORTS: 'yes' }, 'upstreamDataLowPorts', /^upstreamDataLowPorts: "yes" is not true or false \(from FTP_PROXY_UPSTREAM_DATA_LOW_PORTS\)$/],
  ['low ports flag with a value', [...UP, '--upstream-data-low-ports=false'], {}, 'arguments', /'--upstream-data-low-ports' does not take an argument/],
  ['low ports twice', [...UP, '--upstream-data-low-ports', '--upstream-data-low-ports'], {}, 'upstreamDataLowPorts', /--upstream-data-low-ports is given 2 times; give it once/],
  ['status page', [...UP, '--status-page', 'yes'], {}, 'statusPage', /^statusPage: "yes" is not one of auto, on, off \(from --status-page\)$/],
  ['status show clients env', UP, { FTP_PROXY_STATUS_SHOW_CLIENTS: 'on' }, 'statusShowClients', /^statusShowClients: "on" is not true or false \(from FTP_PROXY_STATUS_SHOW_CLIENTS\)$/],
  ['unknown flag', [...UP, '--upstrem', 'x'], {}, 'arguments', /Unknown option '--upstrem'/],
  ['--help is not for loadConfig', ['--help'], {}, 'arguments', /Unknown option '--help'/],
  ['flag without value', ['--upstream'], {}, 'arguments', /argument missing/],
  ['stray word', ['proxy', ...UP], {}, 'arguments', /Unexpected argument 'proxy'/],
  ['empty config path', [...UP, '--config='], {}, 'config', /is empty; give a file name/],
  ['config format', [...UP, '--config', 'proxy.toml'], {}, 'config', /^config: proxy\.toml: unknown format "\.toml"/],
  ['config missing', [...UP, '--config', fixture('no-such.yaml')], {}, 'config', /^config: cannot read .*no-such\.yaml: ENOENT/],
  ['bad YAML', ['--config', fixture('invalid.yaml')], {}, 'config', /invalid\.yaml is not valid YAML: .*line 2/],
  ['bad JSON', ['--config', fixture('invalid.json')], {}, 'config', /invalid\.json is not valid JSON: /],
  ['file holds a list', ['--config', fixture('list.json')], {}, 'config', /list\.json must hold a mapping of settings, not a list/],
  ['unknown file key', ['--config', fixture('unknown-key.yaml')], {}, 'idleTimeOut', /^idleTimeOut: unknown setting in .*unknown-key\.yaml; known settings: listen, upstream/],
  ['wrong type in file', ['--config', fixture('wrong-type.yaml')], {}, 'connectTimeout', /expected a duration such as "5s" or a number of seconds, got true \(from .*wrong-type\.yaml\)$/],
]

t.test('bad settings: one ConfigError naming the setting and the rule', async (t) => {
  t.ok(bad.length >= 15)
  for (const [what, argv, env, setting, message] of bad) {
    t.throws(() => loadConfig(argv, env), { name: 'ConfigError', code: 'CONFIG_INVALID', setting, message }, what)
  }
})

// Values only a config file can hold, passed through the injected reader.
const badFileValues: ReadonlyArray<readonly [string, string, RegExp]> = [
  ['listen: 2121', 'listen', /expected HOST:PORT or a list of them, got 2121/],
  ['listen: []', 'listen', /is empty; give at least one HOST:PORT/],
  ['listen: [127.0.0.1:21, 7]', 'listen', /expected HOST:PORT or a list of them, got a list/],
  ['passivePorts: {min: 30000, max: 30099, step: 1}', 'passivePorts', /unknown key "step"; use \{min, max\}/],
  ['passivePorts: {min: 30000}', 'passivePorts', /max is missing; use \{min, max\}/],
  ['passivePorts: {min: 1.5, max: 2}', 'passivePorts', /min 1\.5 is not a whole number/],
  ['passivePorts: 30000', 'passivePorts', /expected "MIN-MAX" or \{min, max\}, got 30000/],
  ['connectTimeout: 0', 'connectTimeout', /0 must be more than 0/],
  ['connectTimeout: 1.5', 'connectTimeout', /1\.5 is not a whole number of seconds/],
  ['idleTimeout: 86401', 'idleTimeout', /86401 is above the limit of 24h/],
  ['maxLineLength: 8192.5', 'maxLineLength', /8192\.5 is not a whole number of bytes/],
  ['logLevel: null', 'logLevel', /expected one of fatal, .* as a string, got null/],
  ['advertiseAddress: {a: 1}', 'advertiseAddress', /got a mapping/],
  ['config: other.yaml', 'config', /^config: unknown setting in f\.yaml/],
  ['upstreamDataLowPorts: 1', 'upstreamDataLowPorts', /1 is not true or false/],
  ['upstreamDataNetworks: [none, 10.0.0.0/8]', 'upstreamDataNetworks', /none cannot be combined with networks/],
  ['upstreamDataNetworks: {a: 1}', 'upstreamDataNetworks', /expected CIDR,\.\.\. or a list of CIDRs, got a mapping/],
  ['upstreamDataNetworks: null', 'upstreamDataNetworks', /expected CIDR,\.\.\. or a list of CIDRs, got null/],
  ['clientIpv6Prefix: 64.5', 'clientIpv6Prefix', /64\.5 is not a prefix length from 1 to 128 bits/],
  ['maxLeasesPerSession: -1', 'maxLeasesPerSession', /-1 is not a whole number from 1 to 1000000/],
  ['closeTimeout: true', 'closeTimeout', /expected a duration such as "5s" or a number of seconds, got true/],
]

t.test('bad values in a config file', async (t) => {
  for (const [text, setting, message] of badFileValues) {
    const read = () => `upstream: 192.0.2.1:21\n${text}\n`
    t.throws(() => loadConfig(['--config', 'f.yaml'], {}, read), { name: 'ConfigError', setting, message }, text)
  }
  t.throws(
    () => loadConfig(null as unknown as string[], {}),
    { name: 'TypeError', message: /not iterable/ },
    'a caller passing no argument list is a bug, not a ConfigError',
  )
  t.throws(
    () => loadConfig(['--config', 'f.json'], {}, () => '{"upstream": "192.0.2.1:21", "__proto__": {"x": 1}}'),
    { setting: '__proto__', message: /unknown setting/ },
    'a __proto__ key is only an unknown key',
  )
})

t.test('the result is deeply frozen', async (t) => {
  const config = load([...UP, '--listen', '127.0.0.1:0', '--listen', '[::1]:0'])
  t.ok(isDeepFrozen(config))
  t.throws(() => {
    ;(config as { logLevel: string }).logLevel = 'trace'
  }, TypeError)
  t.throws(() => {
    ;(config.listen as Config['listen'][number][]).push({ host: '0.0.0.0', port: 1 })
  }, TypeError)
  t.throws(() => {
    ;(config.passivePorts as { min: number }).min = 1
  }, TypeError)
  t.not(load(UP), load(UP), 'each load builds a new object, so a reload can swap it in whole')
})

t.test('durations: any whole amount in any unit up to 24h', async (t) => {
  const units = { ms: 1, s: 1000, m: 60000, h: 3600000, '': 1000 } as const
  t.doesNotThrow(() => fc.assert(
    fc.property(fc.constantFrom(...(Object.keys(units) as (keyof typeof units)[])), fc.integer({ min: 1, max: 86400000 }), (unit, n) => {
      const ms = n * units[unit]
      const run = () => load([...UP, '--connect-timeout', `${n}${unit}`]).connectTimeoutMs
      if (ms <= 86400000) return run() === ms
      try {
        run()
        return false
      } catch (err) {
        return err instanceof ConfigError && err.setting === 'connectTimeout'
      }
    }),
  ))
})

t.test('help text', async (t) => {
  const help = helpText()
  t.match(help, 'ftp-pasv-proxy [proxy] --upstream HOST:PORT [options]')
  t.match(help, 'ftp-pasv-proxy diagnose ftp://[user[:password]@]host[:port][/dir]')
  t.match(help, '[--password-env VAR] [--json] [--timeout 10s]')
  t.match(help, 'ftp-pasv-proxy demo')
  const flags: ReadonlyArray<readonly [string, string, string]> = [
    ['listen', 'FTP_PROXY_LISTEN', 'default 127.0.0.1:2121'],
    ['upstream', 'FTP_PROXY_UPSTREAM', 'default none, required'],
    ['passive-ports', 'FTP_PROXY_PASSIVE_PORTS', 'default 30000-30099'],
    ['advertise-address', 'FTP_PROXY_ADVERTISE_ADDRESS', 'default auto'],
    ['upstream-data-address', 'FTP_PROXY_UPSTREAM_DATA_ADDRESS', 'default auto'],
    ['connect-timeout', 'FTP_PROXY_CONNECT_TIMEOUT', 'default 5s'],
    ['data-accept-timeout', 'FTP_PROXY_DATA_ACCEPT_TIMEOUT', 'default 30s'],
    ['idle-timeout', 'FTP_PROXY_IDLE_TIMEOUT', 'default 15m'],
    ['shutdown-grace', 'FTP_PROXY_SHUTDOWN_GRACE', 'default 30s'],
    ['max-line-length', 'FTP_PROXY_MAX_LINE_LENGTH', 'default 8192'],
    ['config', 'FTP_PROXY_CONFIG', 'default none'],
    ['log-level', 'FTP_PROXY_LOG_LEVEL', 'default info'],
    ['active-mode', 'FTP_PROXY_ACTIVE_MODE', 'default passive'],
    ['metrics-listen', 'FTP_PROXY_METRICS_LISTEN', 'default 127.0.0.1:9464'],
    ['greeting-timeout', 'FTP_PROXY_GREETING_TIMEOUT', 'default 30s'],
    ['max-sessions', 'FTP_PROXY_MAX_SESSIONS', 'default 2000'],
    ['max-sessions-per-client', 'FTP_PROXY_MAX_SESSIONS_PER_CLIENT', 'default 200'],
    ['allow-clients', 'FTP_PROXY_ALLOW_CLIENTS', 'default everyone'],
    ['data-idle-timeout', 'FTP_PROXY_DATA_IDLE_TIMEOUT', 'default 10m'],
    ['close-timeout', 'FTP_PROXY_CLOSE_TIMEOUT', 'default 2s'],
    ['max-leases-per-session', 'FTP_PROXY_MAX_LEASES_PER_SESSION', 'default 4'],
    ['max-leases-per-client', 'FTP_PROXY_MAX_LEASES_PER_CLIENT', 'default 50'],
    ['client-ipv6-prefix', 'FTP_PROXY_CLIENT_IPV6_PREFIX', 'default 64'],
    ['upstream-data-networks', 'FTP_PROXY_UPSTREAM_DATA_NETWORKS', 'default unset (private ranges)'],
    ['upstream-data-low-ports', 'FTP_PROXY_UPSTREAM_DATA_LOW_PORTS', 'default false'],
  ]
  // One block per option, from its `  --flag` line to the next; line breaks read as spaces.
  const blocks = help.split(/\n(?= {2}--)/).map((b) => b.replace(/\s+/g, ' '))
  for (const [flag, env, dflt] of flags) {
    const block = blocks.find((b) => b.startsWith(` --${flag} `)) ?? ''
    t.match(block, `env ${env}, `, flag)
    t.match(block, `${dflt}`, flag)
  }
  t.match(help, /a duration may be a number meaning\s+seconds/, 'the rule for numbers in files')
  t.match(help, /\n {2}--upstream-data-low-ports\n/, 'a switch shows no argument')
  t.match(help, /upstreamDataLowPorts true or false/)
  for (const line of help.split('\n')) t.ok(line.length <= 80, `fits 80 columns: ${line}`)
})

t.test('formatEndpoint writes what --listen and --upstream read', async (t) => {
  for (const text of ['127.0.0.1:2121', '[::1]:0', '[2001:db8::1]:21', 'ftp.example.com:21']) {
    const [endpoint] = load([...UP, '--listen', text]).listen
    t.equal(endpoint && formatEndpoint(endpoint), text)
  }
})

// [pool, /proc text, overlap]
const overlaps: ReadonlyArray<readonly [{ min: number; max: number }, string, { min: number; max: number } | null]> = [
  [{ min: 30000, max: 30099 }, '32768\t60999\n', null],
  [{ min: 32000, max: 33000 }, '32768\t60999\n', { min: 32768, max: 33000 }],
  [{ min: 40000, max: 40099 }, '32768\t60999\n', { min: 40000, max: 40099 }],
  [{ min: 60999, max: 61100 }, '32768\t60999\n', { min: 60999, max: 60999 }],
  [{ min: 61000, max: 61100 }, '32768\t60999\n', null],
  [{ min: 1024, max: 65535 }, '49152 65535', { min: 49152, max: 65535 }],
  [{ min: 30000, max: 30099 }, '', null],
  [{ min: 30000, max: 30099 }, 'garbage', null],
]

t.test('ephemeralOverlap', async (t) => {
  for (const [pool, text, expected] of overlaps) {
    t.same(ephemeralOverlap(pool, text), expected, `${pool.min}-${pool.max} in ${JSON.stringify(text)}`)
  }
})

t.test('readEphemeralRange', async (t) => {
  t.equal(readEphemeralRange(fixture('range.txt')), '32768\t60999\n')
  t.equal(readEphemeralRange(fixture('no-such-file')), null)
  const real = readEphemeralRange()
  if (process.platform === 'linux') t.match(real, /^\d+\s+\d+\s*$/)
  else t.equal(real, null)
})

t.test('FTPS settings', async (t) => {
  const both = ['--tls-cert', 'c.pem', '--tls-key', 'k.pem']
  const on = load([...UP, ...both])
  t.equal(on.clientTls, 'optional', 'a certificate offers TLS to clients by default')
  t.same(on.tlsCert, ['c.pem'])
  t.equal(load(UP).clientTls, 'off', 'without one, the client side stays clear')
  t.equal(load([...UP, ...both, '--client-tls', 'required']).clientTls, 'required')
  t.throws(() => load([...UP, '--client-tls', 'optional']), { setting: 'clientTls', message: /needs a certificate/ })
  t.throws(() => load([...UP, '--tls-cert', 'c.pem']), { setting: 'tlsKey', message: /together/ })
  t.throws(() => load([...UP, ...both, '--upstream-tls', 'maybe']), { setting: 'upstreamTls', message: /upstreamTls/ })
  t.equal(load([...UP, '--upstream-tls', 'required', '--upstream-tls-insecure']).upstreamTlsInsecure, true)
  t.equal(load([...UP, '--tls-handshake-timeout', '3s']).tlsHandshakeTimeoutMs, 3000)
  t.equal(load(UP, { FTP_PROXY_CLIENT_DATA_TLS_REUSE: 'required' }).clientDataTlsReuse, 'required')
  t.equal(load(UP, { FTP_PROXY_UPSTREAM_TLS_SERVERNAME: 'ftp.example.com' }).upstreamTlsServername, 'ftp.example.com')
})

t.test('FTPS: implicit listeners, several certificates, client certificates', async (t) => {
  const both = ['--tls-cert', 'c.pem', '--tls-key', 'k.pem']
  const implicit = load([...UP, ...both, '--listen-implicit-tls', '127.0.0.1:990', '--listen-implicit-tls', '[::1]:990'])
  t.same(implicit.listenImplicitTls, [{ host: '127.0.0.1', port: 990 }, { host: '::1', port: 990 }], 'repeatable, like --listen')
  t.same(load([...UP, ...both], { FTP_PROXY_LISTEN_IMPLICIT_TLS: '127.0.0.1:990,127.0.0.1:991' }).listenImplicitTls.length, 2, 'a list in the environment')
  t.same(load(UP).listenImplicitTls, [], 'none by default')
  t.throws(() => load([...UP, '--listen-implicit-tls', '127.0.0.1:990']), { setting: 'listenImplicitTls', message: /needs a certificate/ })
  t.throws(() => load([...UP, ...both, '--client-tls', 'off', '--listen-implicit-tls', '127.0.0.1:990']), { setting: 'listenImplicitTls', message: /certificate/ })
  t.throws(() => load([...UP, ...both, '--listen-implicit-tls', '127.0.0.1:30010', '--passive-ports', '30000-30099']), { setting: 'passivePorts', message: /30010/ })
  t.equal(load([...UP, '--upstream-tls', 'implicit']).upstreamTls, 'implicit')

  const two = load([...UP, ...both, '--tls-cert', 'b.pem', '--tls-key', 'b.key'])
  t.same([two.tlsCert, two.tlsKey], [['c.pem', 'b.pem'], ['k.pem', 'b.key']], 'certificates and keys paired in order')
  t.throws(() => load([...UP, ...both, '--tls-cert', 'b.pem']), { setting: 'tlsKey', message: /2 certificates, 1 keys/ })

  t.equal(load([...UP, ...both]).clientCert, 'none')
  const required = load([...UP, ...both, '--tls-ca', 'ca.pem', '--client-cert', 'required'])
  t.same([required.clientCert, required.tlsCa, required.clientTls], ['required', 'ca.pem', 'required'], 'TLS required with it: no clear session goes round it')
  t.throws(() => load([...UP, ...both, '--tls-ca', 'ca.pem', '--client-cert', 'required', '--client-tls', 'optional']), { setting: 'clientTls', message: /go round|past/ })
  t.equal(load([...UP, ...both, '--tls-ca', 'ca.pem', '--client-cert', 'optional']).clientTls, 'optional')
  t.throws(() => load([...UP, ...both, '--client-cert', 'optional']), { setting: 'clientCert', message: /--tls-ca/ })
  t.throws(() => load([...UP, '--tls-ca', 'ca.pem', '--client-cert', 'required']), { setting: 'clientCert', message: /--tls-cert/ })
  t.throws(() => load([...UP, ...both, '--tls-ca', 'ca.pem', '--client-cert', 'always']), { setting: 'clientCert', message: /always/ })

  const own = load([...UP, '--upstream-tls-cert', 'p.pem', '--upstream-tls-key', 'p.key'])
  t.same([own.upstreamTlsCert, own.upstreamTlsKey], ['p.pem', 'p.key'])
  t.throws(() => load([...UP, '--upstream-tls-key', 'p.key']), { setting: 'upstreamTlsCert', message: /together/ })
  t.throws(() => load([...UP, '--upstream-tls-cert', 'p.pem', '--upstream-tls-cert', 'q.pem', '--upstream-tls-key', 'p.key']), { setting: 'upstreamTlsCert', message: /give it once/ })
})
