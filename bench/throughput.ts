// RETR and STOR throughput on loopback, as ratios to a direct transfer measured in the same run.
// Section 1 of `npm run bench` (bench/run.ts), and a program of its own:
//
//   npm run build
//   node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/throughput.ts [--size 512M] [--runs 5]
//
// On a 2-core machine the sender, the receiver and the relay share the CPU, so absolute MB/s
// say more about the machine than about the proxy: only the ratios are worth comparing, and only
// within one run (shared/ENVIRONMENT.md). Paths, each a curl download (RETR) and upload (STOR) of
// the same random file:
//   direct       curl -> vsftpd (curl's default mode: EPSV, and it ignores any 227 address)
//   proxy        curl -> ftp-pasv-proxy (built CLI, its own process) -> vsftpd advertising 127.0.0.99
//   proxy-pasv   the same with curl honouring the rewritten 227 (PASV only, as PRODFTP's client)
//   mod_proxy    curl -> ProFTPD 1.3.8 mod_proxy 0.9.2 (reverse, EPSV to the backend) -> vsftpd
//   haproxy      data connection only through haproxy 2.6 (mode tcp); control direct to vsftpd
//   socat        data connection only through socat -b 131072; control direct to vsftpd
//   node-pipe    data connection only through a 10-line Node net + pipe() relay (the floor for
//                any relay written in Node on this machine); control direct to vsftpd
// Every relay's CPU time is read around each transfer: the proxy, haproxy and the Node relay are
// one process each (threads included); socat forks a child per connection and proftpd a process
// per session, so theirs is the whole process group's (see groupCpuSeconds in lib.ts).
// Peers that are not unpacked under .cache/debs/ (scripts/bench-deps.sh) are skipped with a note.
// Ports: the section's base (default 24000) + 0..112.
import { link, mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises'
import { existsSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { runProcess } from '../test/e2e/lib/proc.js'
import { makeRandomFile, startVsftpd, type FtpServer } from '../test/e2e/lib/servers.js'
import {
  accepts,
  greets,
  groupCpuSeconds,
  groupMembers,
  loadAvg,
  median,
  MiB,
  optionalBinary,
  PROXY_MAIN,
  procCpuSeconds,
  procMemory,
  REPO,
  settleGroup,
  startDaemon,
  startProxyProcess,
  waitFor,
  type Daemon,
} from './lib.js'

export const THROUGHPUT_PATHS = ['direct', 'proxy', 'proxy-pasv', 'mod_proxy', 'haproxy', 'socat', 'node-pipe'] as const
/** The peers, each installed by scripts/bench-deps.sh (node-pipe needs nothing but Node). */
export const PEERS = ['mod_proxy', 'haproxy', 'socat'] as const

/** The section's ports, offsets from its base (default 24000): base .. base+112. */
export function throughputPorts(base: number) {
  return {
    vsftpd: base,
    vsftpdPasv: { min: base + 10, max: base + 29 },
    proxy: base + 30,
    proxyPool: { min: base + 40, max: base + 59 },
    modProxy: base + 60,
    modProxyPasv: { min: base + 70, max: base + 89 },
    // One vsftpd per relay, each advertising the relay's address with a single passive port, so
    // the relay needs to listen on that one port only (socat relays one port per process).
    haproxyVsftpd: base + 100,
    haproxyData: base + 110,
    socatVsftpd: base + 101,
    socatData: base + 111,
    nodeVsftpd: base + 102,
    nodeData: base + 112,
  }
}
type Ports = ReturnType<typeof throughputPorts>

const HAPROXY_ADDR = '127.0.0.2'
const SOCAT_ADDR = '127.0.0.3'
const NODE_ADDR = '127.0.0.4'
// Nothing listens there: the PRODFTP fault, which the proxy is for.
const WRONG_ADDR = '127.0.0.99'

type CurlMode = 'default' | 'pasv'

/** A relay's CPU time, read around each transfer. */
interface RelayCpu {
  /** CPU seconds so far (user + system). */
  read(): number
  /** Resolves once the processes a transfer started (a session, a connection) have ended. */
  settle(): Promise<void>
}

interface PathSpec {
  name: string
  /** Control port curl dials. */
  port: number
  mode: CurlMode
  note: string
  /** Where a STOR lands on disk (removed after each run: 1 GiB files pile up on /dev/shm). */
  uploadDir: string
  relay: RelayCpu | null
}

interface Sample {
  bytes: number
  /** curl's average: bytes over the whole session, login included (MB = 10^6 bytes). */
  mbps: number
  /** CPU seconds the relay's processes used during the run, when there is a relay. */
  relayCpu: number | null
}

/** One row of a table: the figures the report's summary compares with the targets. */
export interface PathStats {
  op: 'RETR' | 'STOR'
  name: string
  median: number
  min: number
  max: number
  ratio: number
  /** Median relay CPU seconds per GiB; null for direct. */
  cpuPerGiB: number | null
}

export interface ThroughputOptions {
  size: number
  runs: number
  /** Where the servers keep their files: /dev/shm, so that a STOR measures the relay, not the disk. */
  tmp: string
  /** A subset of THROUGHPUT_PATHS; null for all. direct is always measured. */
  only: readonly string[] | null
  stor: boolean
  proxyMain: string
  portBase: number
  cleanup: Array<() => Promise<unknown>>
  log: (s: string) => void
}

export interface ThroughputResult {
  /** Markdown: the RETR and STOR tables and the proxy's memory. */
  lines: string[]
  stats: PathStats[]
  /** Peers that could not run, each with why. */
  skipped: string[]
  notes: string[]
}

const HELP = `bench/throughput.ts: RETR and STOR throughput through ftp-pasv-proxy and peers, as ratios to direct.
  --size SIZE      payload, e.g. 512M, 1G, 64M (K/M/G are binary; default 512M)
  --runs N         measured runs per path, median reported (default 5; one warm-up run more)
  --paths LIST     comma-separated subset of ${THROUGHPUT_PATHS.join(',')}
  --no-stor        skip STOR
  --out FILE       also write the markdown report to FILE
  --proxy-main F   the proxy's built entry point (default dist/main.js)
  --tmpdir DIR     where servers keep files (default /dev/shm when present, so the disk is not measured)
  --port-base N    first of the 113 ports used (default 24000)
`

export function parseSize(text: string): number {
  const m = /^(\d+)([KMG])?$/i.exec(text.trim())
  if (m === null) throw new Error(`--size: "${text}" is not a size like 512M or 1G`)
  const unit = { K: 1024, M: MiB, G: 1024 * MiB }[(m[2] ?? 'M').toUpperCase() as 'K' | 'M' | 'G']
  return Number(m[1]) * unit
}

/** /dev/shm when there is one: the servers' files in memory, so a STOR does not measure the disk. */
export function defaultTmp(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : tmpdir()
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '512M' },
      runs: { type: 'string', default: '5' },
      paths: { type: 'string' },
      'no-stor': { type: 'boolean', default: false },
      out: { type: 'string' },
      tmpdir: { type: 'string' },
      'proxy-main': { type: 'string' },
      'port-base': { type: 'string', default: '24000' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(HELP)
    return 0
  }
  const size = parseSize(values.size)
  const runs = Number(values.runs)
  if (!Number.isInteger(runs) || runs < 1 || runs > 100) throw new Error('--runs: an integer from 1 to 100')
  // The servers' temp dirs come from os.tmpdir(), which reads TMPDIR.
  const tmp = values.tmpdir ?? defaultTmp()
  process.env['TMPDIR'] = tmp

  const cleanup: Array<() => Promise<unknown>> = []
  const log = (s: string): void => void process.stderr.write(`${s}\n`)
  const started = new Date()
  const loadStart = loadAvg()
  const proxyMain = values['proxy-main'] ?? PROXY_MAIN
  try {
    const r = await runThroughput({ size, runs, tmp, only: values.paths?.split(',') ?? null, stor: !values['no-stor'], proxyMain, portBase: Number(values['port-base']), cleanup, log })
    const cpus = (await runProcess('nproc', [], { timeoutMs: 5000 })).stdout.trim()
    const report = [
      `Run ${started.toISOString()}, ${cpus} cores, Node ${process.version}, payload ${size / MiB} MiB, ${runs} runs per path (median; one warm-up run not counted), files on ${tmp}.`,
      `ftp-pasv-proxy: ${proxyMain}.`,
      // Anything else running on the machine takes CPU from sender, receiver and relay alike.
      `Load average (1, 5, 15 min) at the start ${loadStart}, at the end ${loadAvg()}.`,
      '',
      ...r.lines,
      ...[...r.skipped, ...r.notes].map((n) => `Note: ${n}`),
      '',
    ].join('\n')
    process.stdout.write(report)
    if (values.out !== undefined) await writeFile(values.out, report)
    return 0
  } finally {
    // Last started, first stopped.
    for (const c of cleanup.reverse()) await c().catch((e: unknown) => log(`cleanup: ${String(e)}`))
  }
}

/** One process (its threads included). */
function processCpu(pid: number): RelayCpu {
  return { read: () => procCpuSeconds(pid), settle: async () => {} }
}

/**
 * A process group whose leader forks a process per session or connection: settled when it is
 * back to the members it had at rest (the leader alone).
 */
function groupCpu(pgid: number): RelayCpu {
  const atRest = groupMembers(pgid).length
  return {
    read: () => groupCpuSeconds(pgid),
    settle: async () => {
      if (!(await settleGroup(pgid, atRest))) throw new Error(`process group ${pgid}: its per-connection processes did not end within 5 s`)
    },
  }
}

/**
 * Starts the servers and relays (stopped through `o.cleanup`), then runs RETR and STOR on every
 * path in interleaved rounds.
 */
export async function runThroughput(o: ThroughputOptions): Promise<ThroughputResult> {
  const want = (name: string): boolean => o.only === null || o.only.includes(name)
  const ports = throughputPorts(o.portBase)
  const notes: string[] = []
  const skipped: string[] = []

  const vs = await startVsftpd({ port: ports.vsftpd, pasvMin: ports.vsftpdPasv.min, pasvMax: ports.vsftpdPasv.max, pasvAddress: WRONG_ADDR })
  o.cleanup.push(() => vs.stop())
  o.log(`throughput: payload of ${o.size} random bytes in ${vs.root}`)
  const payload = await makeRandomFile(vs.root, 'big.bin', o.size)
  const upload = join(vs.root, vs.uploadDir)

  const paths: PathSpec[] = []
  // Always measured: every ratio is to it.
  paths.push({ name: 'direct', port: ports.vsftpd, mode: 'default', note: 'curl -> vsftpd', uploadDir: upload, relay: null })

  const proxy = await startProxyProcess({ listenPort: ports.proxy, upstreamPort: ports.vsftpd, pool: ports.proxyPool, metrics: false, main: o.proxyMain })
  o.cleanup.push(() => proxy.stop(10_000))
  const proxyStart = procMemory(proxy.pid)
  if (want('proxy')) paths.push({ name: 'proxy', port: ports.proxy, mode: 'default', note: 'curl (EPSV) -> ftp-pasv-proxy -> vsftpd', uploadDir: upload, relay: processCpu(proxy.pid) })
  if (want('proxy-pasv')) {
    paths.push({ name: 'proxy-pasv', port: ports.proxy, mode: 'pasv', note: 'curl (PASV, honours the rewritten 227) -> ftp-pasv-proxy -> vsftpd', uploadDir: upload, relay: processCpu(proxy.pid) })
  }

  if (want('mod_proxy')) {
    const mp = await startModProxy(o.tmp, ports, skipped)
    if (mp !== null) {
      o.cleanup.push(() => mp.stop())
      paths.push({
        name: 'mod_proxy',
        port: ports.modProxy,
        mode: 'default',
        note: 'curl (EPSV) -> ProFTPD mod_proxy (EPSV to backend) -> vsftpd; CPU: proftpd and its session processes',
        uploadDir: upload,
        relay: groupCpu(mp.pid),
      })
    }
  }
  for (const kind of ['haproxy', 'socat', 'node-pipe'] as const) {
    if (!want(kind)) continue
    const r = await startRelay(kind, vs, ports, o, skipped)
    if (r === null) continue
    const spec = {
      // haproxy -db runs one process (its threads count in its CPU time).
      haproxy: { note: 'curl (PASV) -> vsftpd; data via haproxy 2.6 mode tcp', cpu: processCpu(r.pid) },
      // socat forks a child per connection, which does the copying: the group's time.
      socat: { note: 'curl (PASV) -> vsftpd; data via socat -b 131072; CPU: socat and its per-connection children', cpu: groupCpu(r.pid) },
      'node-pipe': { note: 'curl (PASV) -> vsftpd; data via Node net + pipe()', cpu: processCpu(r.pid) },
    }[kind]
    paths.push({ name: kind, port: r.ctrlPort, mode: 'pasv', note: spec.note, uploadDir: r.uploadDir, relay: spec.cpu })
  }

  const measure = async (p: PathSpec, op: 'RETR' | 'STOR'): Promise<Sample> => {
    await p.relay?.settle()
    const cpu0 = p.relay?.read() ?? 0
    const s = op === 'RETR' ? await curlRetr(p, o.size) : await curlStor(p, payload.path, o.size)
    await p.relay?.settle()
    const relayCpu = p.relay === null ? null : p.relay.read() - cpu0
    if (op === 'STOR') await unlink(join(p.uploadDir, 'stor.bin'))
    return { ...s, relayCpu }
  }

  // Rounds interleave the paths (direct, proxy, ..., direct, proxy, ...) so that a slow phase of
  // the machine hits every path alike; the first round warms caches and the proxy's JIT and is
  // not counted.
  const stats: PathStats[] = []
  const lines: string[] = []
  for (const op of o.stor ? (['RETR', 'STOR'] as const) : (['RETR'] as const)) {
    const samples = new Map<string, Sample[]>(paths.map((p) => [p.name, []]))
    for (let round = 0; round <= o.runs; round++) {
      for (const p of paths) {
        const s = await measure(p, op)
        o.log(`${op} ${round === 0 ? 'warm-up' : `run ${round}`} ${p.name}: ${s.mbps.toFixed(0)} MB/s${s.relayCpu === null ? '' : `, relay ${s.relayCpu.toFixed(2)} CPU s`}`)
        if (round > 0) samples.get(p.name)!.push(s)
      }
    }
    const t = table(op, paths, samples)
    stats.push(...t.stats)
    lines.push(...t.rows, '')
  }
  const proxyEnd = procMemory(proxy.pid)
  if (proxy.warnings.length > 0) notes.push(`the proxy logged ${proxy.warnings.length} warning(s); first: ${JSON.stringify(proxy.warnings[0])}`)
  lines.push(`ftp-pasv-proxy memory: RSS ${(proxyStart.rss / MiB).toFixed(1)} MiB after start, ${(proxyEnd.rss / MiB).toFixed(1)} MiB at the end, peak (VmHWM) ${(proxyEnd.hwm / MiB).toFixed(1)} MiB over all its runs.`)
  return { lines, stats, skipped, notes }
}

function table(op: 'RETR' | 'STOR', paths: PathSpec[], samples: Map<string, Sample[]>): { rows: string[]; stats: PathStats[] } {
  const direct = median(samples.get('direct')!.map((s) => s.mbps))
  const rows = [
    `| ${op} path | what | median MB/s | min-max MB/s | ratio to direct | relay CPU s per GiB (median, min-max) |`,
    '|---|---|---|---|---|---|',
  ]
  const stats: PathStats[] = []
  for (const p of paths) {
    const ss = samples.get(p.name)!
    const mb = ss.map((s) => s.mbps)
    const cpu = ss.filter((s) => s.relayCpu !== null).map((s) => (s.relayCpu! / s.bytes) * 1024 * MiB)
    const st: PathStats = { op, name: p.name, median: median(mb), min: Math.min(...mb), max: Math.max(...mb), ratio: median(mb) / direct, cpuPerGiB: cpu.length > 0 ? median(cpu) : null }
    stats.push(st)
    const cpuCell = st.cpuPerGiB === null ? '' : `${st.cpuPerGiB.toFixed(2)} (${Math.min(...cpu).toFixed(2)}-${Math.max(...cpu).toFixed(2)})`
    rows.push(`| ${p.name} | ${p.note} | ${st.median.toFixed(0)} | ${st.min.toFixed(0)}-${st.max.toFixed(0)} | ${st.ratio.toFixed(2)} | ${cpuCell} |`)
  }
  return { rows, stats }
}

// ---- curl ----

const CURL_MODE: Record<CurlMode, string[]> = {
  default: [],
  pasv: ['--disable-epsv', '--no-ftp-skip-pasv-ip'],
}

/** A deadline generous enough for 20 MB/s, so only a stuck transfer hits it. */
function maxSeconds(size: number): number {
  return Math.ceil(30 + size / 20e6)
}

async function curlRetr(p: PathSpec, size: number): Promise<{ bytes: number; mbps: number }> {
  // -o /dev/null: the client writes nothing to disk; the sha256 checks are the soak's job.
  const args = ['-q', '-sS', '--max-time', String(maxSeconds(size)), ...CURL_MODE[p.mode], '-o', '/dev/null', '-w', '%{size_download} %{speed_download}']
  return curlRun(p, [...args, `ftp://127.0.0.1:${p.port}/big.bin`], size)
}

async function curlStor(p: PathSpec, file: string, size: number): Promise<{ bytes: number; mbps: number }> {
  // --ftp-method nocwd (STOR upload/stor.bin, no CWD), on every path alike, for mod_proxy: vsftpd
  // logs an anonymous user in at USER (230, no PASS), and mod_proxy 0.9, having seen no PASS,
  // answers CWD and PWD itself with "530 Please login" while it relays EPSV, TYPE and STOR.
  const args = ['-q', '-sS', '--max-time', String(maxSeconds(size)), ...CURL_MODE[p.mode], '--ftp-method', 'nocwd', '-T', file, '-w', '%{size_upload} %{speed_upload}']
  return curlRun(p, [...args, `ftp://127.0.0.1:${p.port}/upload/stor.bin`], size)
}

async function curlRun(p: PathSpec, args: string[], size: number): Promise<{ bytes: number; mbps: number }> {
  const r = await runProcess('curl', args, { timeoutMs: (maxSeconds(size) + 5) * 1000 })
  const [bytes, speed] = r.stdout.trim().split(' ').map(Number)
  // A short transfer would look fast: only a complete one counts.
  if (r.code !== 0 || bytes !== size || speed === undefined) {
    throw new Error(`${p.name}: curl ${args.join(' ')} exited ${r.code} with ${r.stdout.trim()}: ${r.stderr.trim()}`)
  }
  return { bytes, mbps: speed / 1e6 }
}

// ---- peers ----

/**
 * ProFTPD with mod_proxy as a reverse proxy in front of vsftpd. mod_proxy.so comes from Debian's
 * proftpd-mod-proxy, unpacked into .cache/debs/proftpd-mod-proxy/; proftpd's ModulePath takes one
 * directory, so a temp dir links both packages' modules. mod_proxy needs mod_tls loaded first.
 * To the backend it uses EPSV: vsftpd's 227 names 127.0.0.99, which mod_proxy would dial.
 */
async function startModProxy(tmp: string, ports: Ports, skipped: string[]): Promise<Daemon | null> {
  const proftpd = optionalBinary('proftpd', 'proftpd')
  const modProxy = join(REPO, '.cache/debs/proftpd-mod-proxy/usr/lib/proftpd/mod_proxy.so')
  const modDir = join(REPO, '.cache/debs/proftpd/usr/lib/proftpd')
  if (proftpd === null || !existsSync(modProxy) || !existsSync(join(modDir, 'mod_tls.so'))) {
    skipped.push('mod_proxy skipped: proftpd, mod_tls.so or mod_proxy.so missing (bash scripts/bench-deps.sh installs them)')
    return null
  }
  const dir = await mkdtemp(join(tmp, 'bench-modproxy-'))
  const mods = join(dir, 'mods')
  await mkdir(mods)
  for (const f of readdirSync(modDir)) await symlink(join(modDir, f), join(mods, f))
  await symlink(modProxy, join(mods, 'mod_proxy.so'))
  await mkdir(join(dir, 'tables'))
  const conf = [
    'ServerType standalone',
    'ServerName "bench mod_proxy"',
    'DefaultAddress 127.0.0.1',
    'SocketBindTight on',
    'UseIPv6 off',
    `Port ${ports.modProxy}`,
    `PassivePorts ${ports.modProxyPasv.min} ${ports.modProxyPasv.max}`,
    `ModulePath ${mods}`,
    'LoadModule mod_tls.c',
    'LoadModule mod_proxy.c',
    'DelayTable none',
    'WtmpLog off',
    'UseReverseDNS off',
    'TransferLog none',
    `PidFile ${join(dir, 'proftpd.pid')}`,
    `ScoreboardFile ${join(dir, 'proftpd.scoreboard')}`,
    `SystemLog ${join(dir, 'proftpd.log')}`,
    '<IfModule mod_proxy.c>',
    '  ProxyEngine on',
    `  ProxyLog ${join(dir, 'proxy.log')}`,
    `  ProxyTables ${join(dir, 'tables')}`,
    '  ProxyRole reverse',
    `  ProxyReverseServers ftp://127.0.0.1:${ports.vsftpd}`,
    '  ProxyDataTransferPolicy EPSV',
    '</IfModule>',
  ]
  await writeFile(join(dir, 'proftpd.conf'), conf.join('\n') + '\n')
  const d = await startDaemon(proftpd, ['-n', '-c', join(dir, 'proftpd.conf')], { group: true })
  try {
    await waitFor('proftpd mod_proxy', d, () => greets(ports.modProxy))
  } catch (err) {
    await d.stop()
    await rm(dir, { recursive: true, force: true })
    skipped.push(`mod_proxy skipped: ${(err as Error).message}`)
    return null
  }
  return {
    ...d,
    stop: async () => {
      const code = await d.stop()
      await rm(dir, { recursive: true, force: true })
      return code
    },
  }
}

/**
 * A plain TCP relay for the data connection only, for reference: a second vsftpd advertises the
 * relay's address and one passive port; the relay listens on that address and port and forwards
 * to the same port on 127.0.0.1, where vsftpd listens (vsftpd binds its passive socket to the
 * control connection's local address, so both can hold the port). The relay's connection comes
 * from 127.0.0.1, like the control connection, so vsftpd's pasv_promiscuous=NO check passes.
 */
async function startRelay(
  kind: 'haproxy' | 'socat' | 'node-pipe',
  main: FtpServer,
  ports: Ports,
  o: ThroughputOptions,
  skipped: string[],
): Promise<{ pid: number; ctrlPort: number; uploadDir: string } | null> {
  const { addr, ctrlPort, dataPort } = {
    haproxy: { addr: HAPROXY_ADDR, ctrlPort: ports.haproxyVsftpd, dataPort: ports.haproxyData },
    socat: { addr: SOCAT_ADDR, ctrlPort: ports.socatVsftpd, dataPort: ports.socatData },
    'node-pipe': { addr: NODE_ADDR, ctrlPort: ports.nodeVsftpd, dataPort: ports.nodeData },
  }[kind]
  const bin = kind === 'node-pipe' ? process.execPath : optionalBinary(kind, kind)
  if (bin === null) {
    skipped.push(`${kind} skipped: not found (bash scripts/bench-deps.sh installs it)`)
    return null
  }
  const vs = await startVsftpd({ port: ctrlPort, pasvMin: dataPort, pasvMax: dataPort, pasvAddress: addr })
  o.cleanup.push(() => vs.stop())
  // The same payload, without writing it again (both roots are on one file system).
  await link(join(main.root, 'big.bin'), join(vs.root, 'big.bin'))
  let args: string[]
  let dir: string | null = null
  if (kind === 'haproxy') {
    dir = await mkdtemp(join(o.tmp, 'bench-haproxy-'))
    const conf = [
      'global',
      '  maxconn 100',
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 120s',
      '  timeout server 120s',
      'listen ftpdata',
      `  bind ${addr}:${dataPort}`,
      `  server vsftpd 127.0.0.1:${dataPort}`,
    ]
    await writeFile(join(dir, 'haproxy.cfg'), conf.join('\n') + '\n')
    // -db: foreground, no daemon.
    args = ['-db', '-f', join(dir, 'haproxy.cfg')]
  } else if (kind === 'socat') {
    // -b 131072: socat's default 8 KiB buffer makes it the bottleneck (ENVIRONMENT.md used this size).
    args = ['-b', '131072', `TCP-LISTEN:${dataPort},bind=${addr},reuseaddr,fork`, `TCP:127.0.0.1:${dataPort}`]
  } else {
    // allowHalfOpen both ways, as STYLE.md 5 asks of any relay; nothing else: no byte counting,
    // no timers, no logging.
    const script = [
      "const net = require('node:net')",
      'net.createServer({ allowHalfOpen: true }, (c) => {',
      `  const u = net.connect({ host: '127.0.0.1', port: ${dataPort}, allowHalfOpen: true })`,
      "  c.on('error', () => u.destroy()); u.on('error', () => c.destroy())",
      '  c.pipe(u); u.pipe(c)',
      `}).listen(${dataPort}, '${addr}')`,
    ].join('\n')
    args = ['-e', script]
  }
  // A group for socat, whose per-connection children must go with it.
  const d = await startDaemon(bin, args, { group: true })
  const tmpDir = dir
  o.cleanup.push(async () => {
    await d.stop()
    if (tmpDir !== null) await rm(tmpDir, { recursive: true, force: true })
  })
  try {
    // A probe connection: the relay forwards it to a port where nothing listens yet and drops it.
    await waitFor(kind, d, () => accepts(addr, dataPort))
  } catch (err) {
    skipped.push(`${kind} skipped: ${(err as Error).message}`)
    return null
  }
  return { pid: d.pid, ctrlPort, uploadDir: join(vs.root, vs.uploadDir) }
}

// Run as a program (not when run.ts imports it for its first section).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      process.stderr.write(`throughput: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
      process.exitCode = 1
    },
  )
}
