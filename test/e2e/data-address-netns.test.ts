// The data-address policy end to end (issue 8, "What must show it" 5 and 6), in network
// namespaces this test creates. Every address below exists only inside them; no namespace has a
// default route, and the root namespace is never given an address or a route.
//
//   out (proxy outside)        nat (the server's router)          srv (the servers)
//   o0 198.51.100.129/25 ----- n0 198.51.100.130/25  "public"
//                              n2 172.16.40.1/24 ---------------- s0 172.16.40.222/24
//   in (proxy inside)          n1 10.20.0.1/24                    s1 169.254.169.254/32,
//   i0 10.20.0.5/24 ---------'                                       198.51.100.7/32 (a second
//                                                                    link of srv's own)
//
// nat forwards between its links and DNATs 198.51.100.130:27700 (the FTP control port) to
// 172.16.40.222 from every side, and the passive range 198.51.100.130:27710-27719 only for what
// arrives from the outside link n0: from `in` those ports are the router's own and refused, a NAT
// "that forwards only port 21". vsftpd in srv, without pasv_address, advertises its own
// 172.16.40.222 in every 227: the PRODFTP story.
//
// Item 6, the story works by default in both placements:
//  (a) the proxy in `out` (its upstream-side address 198.51.100.129 is public, no route to
//      172.16.40.0/24): the control address 198.51.100.130 serves the data ports through the NAT;
//  (b) the proxy in `in` (10.20.0.5, private, routed to 172.16.40.0/24): the control address
//      refuses the data ports, only the advertised 172.16.40.222 serves them.
// Item 5, a hostile server whose 227 names an address other than its own, with a listener there
// that records every connection and would serve the file:
//  - a double at 127.0.0.2 in `in` naming 127.0.0.1:27752, a service on the proxy host's loopback;
//  - a double at 172.16.40.222:27750 naming 169.254.169.254:80 (cloud metadata) and
//    198.51.100.7:27753 (a documentation-range address), both on srv's second link and routed
//    from `in`, so only the proxy's policy stands between them and the proxy.
// By default: 425, failure reason data_address_refused, a log hint naming --upstream-data-networks,
// and no listener sees a connection. With the network listed the transfer works, sha256 equal.
//
// Every proxy is the built CLI (dist/main.js; PROXY_ROOT=<checkout> runs another build, such as
// the one before the fix) started in its namespace under setpriv --pdeathsig; the clients and the
// double are test/fixtures/data-address-agent.ts run there with tap's TypeScript loader.
// Ports: 27700-27799.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { ClientResult, ClientSpec, ServerSpec } from '../fixtures/data-address-agent.js'
import { findBinary } from './lib/bin.js'
import { makeRandomFile } from './lib/files.js'
import { runProcess } from './lib/proc.js'

t.setTimeout(180_000)

const PREFIX = 'ftpdap'
const NS = {
  out: `${PREFIX}-out-${process.pid}`,
  in: `${PREFIX}-in-${process.pid}`,
  nat: `${PREFIX}-nat-${process.pid}`,
  srv: `${PREFIX}-srv-${process.pid}`,
} as const
const A = {
  out: '198.51.100.129',
  natPublic: '198.51.100.130',
  in: '10.20.0.5',
  natInside: '10.20.0.1',
  natServerSide: '172.16.40.1',
  srv: '172.16.40.222',
  linkLocal: '169.254.169.254',
  docRange: '198.51.100.7',
} as const
const VSFTPD_PORT = 27700
const PASV_MIN = 27710
const PASV_MAX = 27719
const DOUBLE_SRV_PORT = 27750
const DOUBLE_LO_PORT = 27751
const LOOPBACK_TARGET_PORT = 27752
const DOCRANGE_TARGET_PORT = 27753
const FILE_BYTES = 3 * 1024 * 1024 + 17

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const PROXY_MAIN = join(resolve(process.env['PROXY_ROOT'] ?? REPO), 'dist/main.js')
const LOADER = join(REPO, 'node_modules/@tapjs/typescript/dist/esm/import.mjs')
const AGENT = fileURLToPath(new URL('../fixtures/data-address-agent.ts', import.meta.url))

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
const inNs = (ns: string, ...args: string[]): string => ip('netns', 'exec', ns, ...args)
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

// ---- cleanup, in reverse order of set-up, whatever happens ----

const cleanups: Array<() => Promise<void> | void> = []
t.teardown(async () => {
  for (const step of cleanups.reverse()) {
    try {
      await step()
    } catch (err) {
      t.comment(`cleanup: ${(err as Error).message}`)
    }
  }
})

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

// Namespaces of an earlier run of this file killed before its teardown: their names carry that
// run's pid; only those whose process is gone are removed.
for (const line of ip('netns', 'list').split('\n')) {
  const m = new RegExp(`^(${PREFIX}-(?:out|in|nat|srv)-(\\d+))\\b`).exec(line)
  if (m !== null && !pidAlive(Number(m[2]))) ip('netns', 'delete', m[1]!)
}

// ---- the namespaces and their links ----

for (const ns of Object.values(NS)) {
  ip('netns', 'add', ns)
  cleanups.push(() => void ip('netns', 'delete', ns))
  inNs(ns, 'ip', 'link', 'set', 'lo', 'up')
}
// Each veth is created with both ends inside namespaces: nothing in the root one.
ip('-n', NS.out, 'link', 'add', 'o0', 'type', 'veth', 'peer', 'name', 'n0', 'netns', NS.nat)
ip('-n', NS.in, 'link', 'add', 'i0', 'type', 'veth', 'peer', 'name', 'n1', 'netns', NS.nat)
ip('-n', NS.nat, 'link', 'add', 'n2', 'type', 'veth', 'peer', 'name', 's0', 'netns', NS.srv)
// srv's second link, both ends in srv (the dummy link type needs a module these machines lack).
ip('-n', NS.srv, 'link', 'add', 's1', 'type', 'veth', 'peer', 'name', 's2')
const addrs: Array<[string, string, string]> = [
  [NS.out, 'o0', `${A.out}/25`],
  [NS.nat, 'n0', `${A.natPublic}/25`],
  [NS.in, 'i0', `${A.in}/24`],
  [NS.nat, 'n1', `${A.natInside}/24`],
  [NS.nat, 'n2', `${A.natServerSide}/24`],
  [NS.srv, 's0', `${A.srv}/24`],
  [NS.srv, 's1', `${A.linkLocal}/32`],
  [NS.srv, 's1', `${A.docRange}/32`],
]
for (const [ns, dev, cidr] of addrs) {
  ip('-n', ns, 'addr', 'add', cidr, 'dev', dev)
  ip('-n', ns, 'link', 'set', dev, 'up')
}
ip('-n', NS.srv, 'link', 'set', 's2', 'up')
// Routes for the test's own networks only; never a default route. `out` has none beyond its link.
const routes: Array<[string, string, string]> = [
  [NS.in, '172.16.40.0/24', A.natInside],
  [NS.in, '198.51.100.128/25', A.natInside],
  [NS.in, `${A.linkLocal}/32`, A.natInside],
  [NS.in, `${A.docRange}/32`, A.natInside],
  [NS.nat, `${A.linkLocal}/32`, A.srv],
  [NS.nat, `${A.docRange}/32`, A.srv],
  [NS.srv, '10.20.0.0/24', A.natServerSide],
  [NS.srv, '198.51.100.128/25', A.natServerSide],
]
for (const [ns, net, via] of routes) ip('-n', ns, 'route', 'add', net, 'via', via)
inNs(NS.nat, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1')
inNs(
  NS.nat,
  'nft',
  [
    'add table ip ftpdap',
    'add chain ip ftpdap pre { type nat hook prerouting priority dstnat; policy accept; }',
    `add rule ip ftpdap pre ip daddr ${A.natPublic} tcp dport ${VSFTPD_PORT} dnat to ${A.srv}`,
    `add rule ip ftpdap pre iifname "n0" ip daddr ${A.natPublic} tcp dport ${PASV_MIN}-${PASV_MAX} dnat to ${A.srv}`,
  ].join('; '),
)

// ---- processes inside the namespaces ----

interface NsProcess {
  readonly child: ChildProcess
  output(): string
  lines(): Array<Record<string, unknown>>
  stop(): Promise<void>
}

/** Runs cmd inside ns as this process's child, in its own process group, with a parent-death signal. */
async function spawnInNs(ns: string, cmd: string[]): Promise<NsProcess> {
  const child = spawn('ip', ['netns', 'exec', ns, findBinary('setpriv'), '--pdeathsig', 'KILL', '--', ...cmd], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let out = ''
  let err = ''
  child.stdout?.on('data', (b: Buffer) => {
    out += b.toString('utf8')
  })
  child.stderr?.on('data', (b: Buffer) => {
    err = (err + b.toString('utf8')).slice(-65536)
  })
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  await new Promise<void>((r, reject) => {
    child.once('spawn', r)
    child.once('error', reject)
  })
  const pid = child.pid as number
  const kill = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig)
    } catch {
      // Already gone.
    }
  }
  let stopping: Promise<void> | undefined
  const p: NsProcess = {
    child,
    output: () => `${out.slice(-65536)}${err === '' ? '' : `\nstderr: ${err}`}`,
    lines: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    stop: () => {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          kill('SIGTERM')
          const timer = setTimeout(() => kill('SIGKILL'), 5000)
          await exited
          clearTimeout(timer)
        }
        // vsftpd's session processes may outlive their master.
        kill('SIGKILL')
      })()
      return stopping
    },
  }
  cleanups.push(() => p.stop())
  return p
}

async function waitUntil(what: string, p: NsProcess, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    if (check()) return
    if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${what} exited: ${p.output()}`)
    await sleep(50)
  }
  throw new Error(`${what} not ready within 15 s: ${p.output()}`)
}

const listening = (ns: string, port: number): boolean => inNs(ns, 'ss', '-Hltn', `sport = :${port}`).trim() !== ''

/** One TCP connect from inside ns: 'connected' or the error code. */
async function tcpProbe(ns: string, host: string, port: number): Promise<string> {
  const script = `const s=require('net').connect({host:${JSON.stringify(host)},port:${port},timeout:3000});s.on('connect',()=>{console.log('connected');s.destroy()});s.on('timeout',()=>{console.log('ETIMEDOUT');s.destroy()});s.on('error',(e)=>console.log(e.code))`
  const r = await runProcess('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { timeoutMs: 10_000 })
  return r.stdout.trim()
}

// ---- the proxies (built CLI), started when a test first needs one ----

interface Proxy {
  readonly ns: string
  readonly port: number
  readonly metricsUrl: string
  readonly process: NsProcess
}

interface ProxySpec {
  readonly ns: string
  readonly upstream: string
  readonly listenPort: number
  readonly metricsPort: number
  readonly pool: string
  readonly extra?: readonly string[]
}

const proxies = new Map<string, Promise<Proxy>>()
function proxy(name: string, spec: ProxySpec): Promise<Proxy> {
  let p = proxies.get(name)
  if (p === undefined) {
    p = (async () => {
      if (!existsSync(PROXY_MAIN)) throw new Error(`${PROXY_MAIN} is missing: run "npm run build" first`)
      const proc = await spawnInNs(spec.ns, [
        process.execPath,
        PROXY_MAIN,
        '--listen',
        `127.0.0.1:${spec.listenPort}`,
        '--upstream',
        spec.upstream,
        '--passive-ports',
        spec.pool,
        '--metrics-listen',
        `127.0.0.1:${spec.metricsPort}`,
        '--connect-timeout',
        '2s',
        '--log-level',
        'debug',
        ...(spec.extra ?? []),
      ])
      await waitUntil(`proxy ${name}`, proc, () => proc.output().includes('"proxy listening"') && listening(spec.ns, spec.metricsPort))
      return { ns: spec.ns, port: spec.listenPort, metricsUrl: `http://127.0.0.1:${spec.metricsPort}/metrics`, process: proc }
    })()
    proxies.set(name, p)
  }
  return p
}

async function runClient(px: Proxy, user: string, file: string, transfers: number): Promise<ClientResult> {
  const spec: ClientSpec = { proxy: { host: '127.0.0.1', port: px.port }, user, file, transfers, metricsUrl: px.metricsUrl }
  const r = await runProcess('ip', ['netns', 'exec', px.ns, process.execPath, `--import=${LOADER}`, AGENT, 'client', JSON.stringify(spec)], {
    timeoutMs: 60_000,
  })
  if (r.code !== 0) throw new Error(`client exited ${String(r.code)}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr.slice(-3000)}`)
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as ClientResult
}

/** The value of one series in a /metrics text; 0 when the metric has no such sample. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null || m[1] !== name) continue
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]))
    if (Object.keys(have).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3])
  }
  if (!text.split('\n').some((l) => l.startsWith(`# TYPE ${name} `))) throw new Error(`/metrics has no ${name}`)
  return 0
}

// ---- the servers ----

// vsftpd in srv on 172.16.40.222 without pasv_address: its 227 names 172.16.40.222.
const work = await mkdtemp(join(tmpdir(), 'ftpdap-'))
cleanups.push(() => rm(work, { recursive: true, force: true }))
await chmod(work, 0o755)
const root = join(work, 'root')
await mkdir(root)
await mkdir(join(work, 'empty'))
await chmod(root, 0o755)
const bigFile = await makeRandomFile(root, 'big.bin', FILE_BYTES)
const vsftpdConf = join(work, 'vsftpd.conf')
await writeFile(
  vsftpdConf,
  [
    'listen=YES',
    'listen_ipv6=NO',
    'background=NO',
    `listen_address=${A.srv}`,
    `listen_port=${VSFTPD_PORT}`,
    'seccomp_sandbox=NO',
    `secure_chroot_dir=${join(work, 'empty')}`,
    'anonymous_enable=YES',
    'local_enable=NO',
    'no_anon_password=YES',
    `anon_root=${root}`,
    'ftp_username=daemon',
    'pasv_enable=YES',
    `pasv_min_port=${PASV_MIN}`,
    `pasv_max_port=${PASV_MAX}`,
  ].join('\n') + '\n',
)
const vsftpd = await spawnInNs(NS.srv, [findBinary('vsftpd'), vsftpdConf])
await waitUntil('vsftpd', vsftpd, () => listening(NS.srv, VSFTPD_PORT))

// The hostile doubles: one in srv (link-local and documentation-range targets), one on the
// loopback of `in`, the namespace of the proxies that face it.
async function startDouble(ns: string, spec: ServerSpec): Promise<{ proc: NsProcess; sha256: string }> {
  const proc = await spawnInNs(ns, [process.execPath, `--import=${LOADER}`, AGENT, 'server', JSON.stringify(spec)])
  await waitUntil('server double', proc, () => proc.lines().some((l) => l['event'] === 'ready'))
  const ready = proc.lines().find((l) => l['event'] === 'ready') ?? {}
  return { proc, sha256: String(ready['sha256']) }
}
const [doubleSrv, doubleLo] = await Promise.all([
  startDouble(NS.srv, {
    control: { host: A.srv, port: DOUBLE_SRV_PORT },
    targets: { linklocal: { host: A.linkLocal, port: 80 }, docrange: { host: A.docRange, port: DOCRANGE_TARGET_PORT } },
    fileBytes: FILE_BYTES,
  }),
  startDouble(NS.in, {
    control: { host: '127.0.0.2', port: DOUBLE_LO_PORT },
    targets: { loopback: { host: '127.0.0.1', port: LOOPBACK_TARGET_PORT } },
    fileBytes: FILE_BYTES,
  }),
])
/** Connections the hostile double's listener at `target` accepted so far. */
const seen = (target: string): Array<Record<string, unknown>> =>
  [...doubleSrv.proc.lines(), ...doubleLo.proc.lines()].filter((l) => l['event'] === 'data' && l['target'] === target)

// The proxies. Each namespace's loopback is its own, so ports repeat across namespaces.
const PROXIES = {
  outside: { ns: NS.out, upstream: `${A.natPublic}:${VSFTPD_PORT}`, listenPort: 27730, metricsPort: 27731, pool: '27740-27744' },
  inside: { ns: NS.in, upstream: `${A.natPublic}:${VSFTPD_PORT}`, listenPort: 27730, metricsPort: 27731, pool: '27740-27744' },
  hostileDefault: { ns: NS.in, upstream: `${A.srv}:${DOUBLE_SRV_PORT}`, listenPort: 27760, metricsPort: 27761, pool: '27770-27774' },
  hostileListed: {
    ns: NS.in,
    upstream: `${A.srv}:${DOUBLE_SRV_PORT}`,
    listenPort: 27762,
    metricsPort: 27763,
    pool: '27775-27779',
    extra: ['--upstream-data-networks', '169.254.0.0/16,198.51.100.0/24', '--upstream-data-low-ports'],
  },
  loopbackDefault: { ns: NS.in, upstream: `127.0.0.2:${DOUBLE_LO_PORT}`, listenPort: 27764, metricsPort: 27765, pool: '27780-27784' },
  loopbackListed: {
    ns: NS.in,
    upstream: `127.0.0.2:${DOUBLE_LO_PORT}`,
    listenPort: 27766,
    metricsPort: 27767,
    pool: '27785-27789',
    extra: ['--upstream-data-networks', '127.0.0.0/8'],
  },
} as const satisfies Record<string, ProxySpec>
const startNamed = (name: keyof typeof PROXIES): Promise<Proxy> => proxy(name, PROXIES[name])

// ---- the tests ----

const probesSeen = { loopback: 0, linklocal: 0, docrange: 0 }
t.test('the topology: who reaches what', async (t) => {
  for (const ns of Object.values(NS)) t.notMatch(inNs(ns, 'ip', 'route', 'show'), /default/, `${ns}: no default route`)
  t.equal(await tcpProbe(NS.out, A.natPublic, VSFTPD_PORT), 'connected', 'out reaches the control port at the public address')
  t.equal(await tcpProbe(NS.out, A.srv, VSFTPD_PORT), 'ENETUNREACH', 'out has no route to the server\'s private address')
  t.equal(await tcpProbe(NS.in, A.natPublic, VSFTPD_PORT), 'connected', 'in reaches the control port at the public address (DNAT)')
  t.equal(await tcpProbe(NS.in, A.natPublic, PASV_MIN + 5), 'ECONNREFUSED', 'from in, the NAT forwards only the control port')
  t.equal(await tcpProbe(NS.in, A.srv, VSFTPD_PORT), 'connected', 'in reaches the server\'s private address')
  // The hostile targets are reachable from the proxies' namespace: only the policy keeps the
  // proxy from them. These probes come from the test, not the proxy: they are not counted below.
  t.equal(await tcpProbe(NS.in, '127.0.0.1', LOOPBACK_TARGET_PORT), 'connected', 'the loopback service answers in `in`')
  t.equal(await tcpProbe(NS.in, A.linkLocal, 80), 'connected', '169.254.169.254:80 answers from `in`')
  t.equal(await tcpProbe(NS.in, A.docRange, DOCRANGE_TARGET_PORT), 'connected', '198.51.100.7 answers from `in`')
  t.equal(await tcpProbe(NS.in, '127.0.0.2', LOOPBACK_TARGET_PORT), 'ECONNREFUSED', 'the loopback double\'s own address has no data port there')
  t.equal(await tcpProbe(NS.in, A.srv, 80), 'ECONNREFUSED', 'nor has the srv double at its control address')
  // The probes were accepted by the doubles' listeners: the tests below count from here on.
  await sleep(200)
  for (const k of Object.keys(probesSeen) as Array<keyof typeof probesSeen>) probesSeen[k] = seen(k).length
  t.same(probesSeen, { loopback: 1, linklocal: 1, docrange: 1 }, 'each target\'s listener recorded the one probe')
})
const newSeen = (target: keyof typeof probesSeen): Array<Record<string, unknown>> => seen(target).slice(probesSeen[target])

t.test('item 6 (a): proxy outside the server\'s network, the NAT forwards the passive range', async (t) => {
  const px = await startNamed('outside')
  const r = await runClient(px, 'anonymous', 'big.bin', 2)
  for (const [i, x] of r.transfers.entries()) {
    t.equal(x.pasv.code, 227, `transfer ${i + 1}: 227`, { pasv: x.pasv.text })
    t.equal(x.retr?.code, 226, `transfer ${i + 1}: 226`, { retr: x.retr?.text, log: px.process.output().slice(-4000) })
    t.equal(x.sha256, bigFile.sha256, `transfer ${i + 1}: sha256 equal`)
  }
  const rewrites = px.process.lines().filter((l) => l['msg'] === 'passive reply rewritten')
  t.equal(rewrites.length, 2, 'two passive replies rewritten')
  for (const w of rewrites) {
    t.match(String(w['fromServer']), /\(172,16,40,222,/, 'vsftpd named its private address (PRODFTP)')
    t.match(String(w['dialled']), new RegExp(`^${A.natPublic.replace(/\./g, '\\.')}:`), 'the proxy dialled the control address')
  }
  t.equal(metric(r.metrics, 'ftp_proxy_data_targets_total', { target: 'control' }), 2, 'data_targets{control} = 2')
  t.equal(metric(r.metrics, 'ftp_proxy_data_targets_total', { target: 'advertised' }), 0, 'data_targets{advertised} = 0')
  t.equal(metric(r.metrics, 'ftp_proxy_data_connections_total', { result: 'failed' }), 0, 'no failed data connection')
})

t.test('item 6 (b): proxy inside the server\'s private network, the NAT forwards only the control port', async (t) => {
  const px = await startNamed('inside')
  const r = await runClient(px, 'anonymous', 'big.bin', 2)
  for (const [i, x] of r.transfers.entries()) {
    t.equal(x.pasv.code, 227, `transfer ${i + 1}: 227`, { pasv: x.pasv.text, log: px.process.output().slice(-4000) })
    t.equal(x.retr?.code, 226, `transfer ${i + 1}: 226`, { retr: x.retr?.text })
    t.equal(x.sha256, bigFile.sha256, `transfer ${i + 1}: sha256 equal`)
  }
  const rewrites = px.process.lines().filter((l) => l['msg'] === 'passive reply rewritten')
  t.equal(rewrites.length, 2, 'two passive replies rewritten')
  for (const w of rewrites) {
    t.match(String(w['fromServer']), /\(172,16,40,222,/, 'vsftpd named its private address')
    t.match(String(w['dialled']), /^172\.16\.40\.222:/, 'the proxy dialled the advertised private address')
  }
  t.equal(metric(r.metrics, 'ftp_proxy_data_targets_total', { target: 'advertised' }), 2, 'data_targets{advertised} = 2')
  t.equal(metric(r.metrics, 'ftp_proxy_data_targets_total', { target: 'control' }), 0, 'data_targets{control} = 0')
  t.equal(metric(r.metrics, 'ftp_proxy_data_connections_total', { result: 'failed' }), 0, 'no failed data connection')
})

// [what, proxy by default, proxy with the network listed, login (= target), the address named]
const attacks = [
  ['a service on the proxy host\'s loopback: 127.0.0.1 from a server at 127.0.0.2', 'loopbackDefault', 'loopbackListed', 'loopback', `127.0.0.1:${LOOPBACK_TARGET_PORT}`],
  ['cloud metadata: 169.254.169.254:80', 'hostileDefault', 'hostileListed', 'linklocal', `${A.linkLocal}:80`],
  ['a documentation-range address: 198.51.100.7', 'hostileDefault', 'hostileListed', 'docrange', `${A.docRange}:${DOCRANGE_TARGET_PORT}`],
] as const

const refusedSoFar = new Map<string, number>()
for (const [what, byDefault, , target, named] of attacks) {
  t.test(`item 5, by default: ${what} is refused`, async (t) => {
    const px = await startNamed(byDefault)
    const logFrom = px.process.lines().length
    const r = await runClient(px, target, 'f.bin', 1)
    const x = r.transfers[0]
    t.equal(x?.pasv.code, 425, 'the client gets 425', { pasv: x?.pasv.text })
    t.equal(x?.retr, null, 'no RETR is sent after it')
    // The proxy dials before it answers the PASV: by now any connection it made has been accepted.
    await sleep(300)
    t.same(newSeen(target), [], `the listener at ${named} saw no connection`)
    const expected = (refusedSoFar.get(byDefault) ?? 0) + 1
    refusedSoFar.set(byDefault, expected)
    t.equal(
      metric(r.metrics, 'ftp_proxy_data_connection_failures_total', { reason: 'data_address_refused' }),
      expected,
      `failures{reason="data_address_refused"} = ${expected}`,
    )
    t.equal(metric(r.metrics, 'ftp_proxy_data_targets_total', { target: 'advertised' }), 0, 'data_targets{advertised} = 0')
    const failed = px.process
      .lines()
      .slice(logFrom)
      .filter((l) => l['msg'] === 'data connection failed')
    t.equal(failed.length, 1, 'one "data connection failed" line', { log: px.process.output().slice(-4000) })
    const line = failed[0] ?? {}
    t.equal(line['reason'], 'data_address_refused', 'its reason')
    t.match(String(line['hint']), /--upstream-data-networks/, 'its hint names --upstream-data-networks')
    t.match(JSON.stringify(line), named.split(':')[0]!, 'the line names the refused address')
  })
}

for (const [what, , listed, target, named] of attacks) {
  t.test(`item 5, network listed: ${what} serves the transfer`, async (t) => {
    const px = await startNamed(listed)
    const before = newSeen(target).length
    const r = await runClient(px, target, 'f.bin', 1)
    const x = r.transfers[0]
    const sha256 = target === 'loopback' ? doubleLo.sha256 : doubleSrv.sha256
    t.equal(x?.pasv.code, 227, 'the client gets 227', { pasv: x?.pasv.text, log: px.process.output().slice(-4000) })
    t.equal(x?.retr?.code, 226, '226', { retr: x?.retr?.text })
    t.equal(x?.sha256, sha256, 'sha256 equal')
    const conns = newSeen(target).slice(before)
    t.equal(conns.length, 1, `the listener at ${named} saw one connection`)
    const from = target === 'loopback' ? '127.0.0.1' : A.in
    t.equal(conns[0]?.['from'], from, `from the proxy's upstream-side address ${from}`)
    t.ok(metric(r.metrics, 'ftp_proxy_data_targets_total', { target: 'advertised' }) >= 1, 'data_targets{advertised} counted it')
  })
}
