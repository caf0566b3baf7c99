// RETR and STOR throughput on loopback, as ratios to a direct download measured in the same run.
//
//   npm run build
//   node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/throughput.ts [--size 512M] [--runs 5]
//
// On a 2-core machine the sender, the receiver and the relay share the CPU, so absolute MB/s
// say more about the machine than about the proxy: only the ratios are worth comparing, and only
// within one run (shared/ENVIRONMENT.md). Paths, each a curl download of the same random file:
//   direct       curl -> vsftpd (curl's default mode: EPSV, and it ignores any 227 address)
//   proxy        curl -> ftp-pasv-proxy (built CLI, its own process) -> vsftpd advertising 127.0.0.99
//   proxy-pasv   the same with curl honouring the rewritten 227 (PASV only, as PRODFTP's client)
//   mod_proxy    curl -> ProFTPD 1.3.8 mod_proxy 0.9.2 (reverse, EPSV to the backend) -> vsftpd
//   haproxy      data connection only through haproxy 2.6 (mode tcp); control direct to vsftpd
//   socat        data connection only through socat -b 131072; control direct to vsftpd
//   node-pipe    data connection only through a 10-line Node net + pipe() relay (the floor for
//                any relay written in Node on this machine); control direct to vsftpd
// Peers that are not unpacked under .cache/debs/ are skipped with a note. Ports: 24000-24199.
import { link, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { runProcess } from '../test/e2e/lib/proc.js'
import { makeRandomFile, startVsftpd, type FtpServer } from '../test/e2e/lib/servers.js'
import {
  accepts,
  greets,
  median,
  MiB,
  optionalBinary,
  PROXY_MAIN,
  procCpuSeconds,
  procMemory,
  REPO,
  startDaemon,
  startProxyProcess,
  waitFor,
  type Daemon,
} from './lib.js'

const PORTS = {
  vsftpd: 24000,
  vsftpdPasv: { min: 24010, max: 24029 },
  proxy: 24030,
  proxyPool: { min: 24040, max: 24059 },
  modProxy: 24060,
  modProxyPasv: { min: 24070, max: 24089 },
  // One vsftpd per relay, each advertising the relay's address with a single passive port, so
  // the relay needs to listen on that one port only (socat relays one port per process).
  haproxyVsftpd: 24100,
  haproxyData: 24110,
  socatVsftpd: 24101,
  socatData: 24111,
  nodeVsftpd: 24102,
  nodeData: 24112,
} as const
const HAPROXY_ADDR = '127.0.0.2'
const SOCAT_ADDR = '127.0.0.3'
const NODE_ADDR = '127.0.0.4'
// Nothing listens there: the PRODFTP fault, which the proxy is for.
const WRONG_ADDR = '127.0.0.99'

type CurlMode = 'default' | 'pasv'
interface PathSpec {
  name: string
  /** Control port curl dials. */
  port: number
  mode: CurlMode
  note: string
  /** The relay's process, whose CPU time is read around each run; null when not one process. */
  cpuPid: number | null
}

interface Sample {
  bytes: number
  /** curl's average: bytes over the whole session, login included (MB = 10^6 bytes). */
  mbps: number
  /** CPU seconds the relay process used during the run, when there is one to read. */
  relayCpu: number | null
}

const HELP = `bench/throughput.ts: RETR and STOR throughput through ftp-pasv-proxy and peers, as ratios to direct.
  --size SIZE     payload, e.g. 512M, 1G, 64M (K/M/G are binary; default 512M)
  --runs N        measured runs per path, median reported (default 5; one warm-up run more)
  --paths LIST    comma-separated subset of direct,proxy,proxy-pasv,mod_proxy,haproxy,socat,node-pipe
  --no-stor       skip the STOR comparison
  --out FILE      also write the markdown report to FILE
  --proxy-main F  the proxy's built entry point (default dist/main.js)
  --tmpdir DIR    where servers keep files (default /dev/shm when present, so the disk is not measured)
`

function parseSize(text: string): number {
  const m = /^(\d+)([KMG])?$/i.exec(text.trim())
  if (m === null) throw new Error(`--size: "${text}" is not a size like 512M or 1G`)
  const unit = { K: 1024, M: MiB, G: 1024 * MiB }[(m[2] ?? 'M').toUpperCase() as 'K' | 'M' | 'G']
  return Number(m[1]) * unit
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
  // The servers' temp dirs come from os.tmpdir(), which reads TMPDIR: on tmpfs a STOR measures
  // the relay, not the disk's write-back.
  const tmp = values.tmpdir ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir())
  process.env['TMPDIR'] = tmp

  const cleanup: Array<() => Promise<unknown>> = []
  const log = (s: string): void => void process.stderr.write(`${s}\n`)
  try {
    const report = await bench({ size, runs, tmp, only: values.paths?.split(',') ?? null, stor: !values['no-stor'], proxyMain: values['proxy-main'] ?? PROXY_MAIN, cleanup, log })
    process.stdout.write(report)
    if (values.out !== undefined) await writeFile(values.out, report)
    return 0
  } finally {
    // Last started, first stopped.
    for (const c of cleanup.reverse()) await c().catch((e: unknown) => log(`cleanup: ${String(e)}`))
  }
}

interface BenchOptions {
  size: number
  runs: number
  tmp: string
  only: string[] | null
  stor: boolean
  proxyMain: string
  cleanup: Array<() => Promise<unknown>>
  log: (s: string) => void
}

async function bench(o: BenchOptions): Promise<string> {
  const want = (name: string): boolean => o.only === null || o.only.includes(name)
  const notes: string[] = []
  const started = new Date()
  const loadStart = loadAvg()

  const vs = await startVsftpd({ port: PORTS.vsftpd, pasvMin: PORTS.vsftpdPasv.min, pasvMax: PORTS.vsftpdPasv.max, pasvAddress: WRONG_ADDR })
  o.cleanup.push(() => vs.stop())
  o.log(`payload: ${o.size} random bytes in ${vs.root}`)
  const payload = await makeRandomFile(vs.root, 'big.bin', o.size)

  const paths: PathSpec[] = []
  // Always measured: every ratio is to it.
  paths.push({ name: 'direct', port: PORTS.vsftpd, mode: 'default', note: 'curl -> vsftpd', cpuPid: null })

  const proxy = await startProxyProcess({ listenPort: PORTS.proxy, upstreamPort: PORTS.vsftpd, pool: PORTS.proxyPool, metrics: false, main: o.proxyMain })
  o.cleanup.push(() => proxy.stop(10_000))
  const proxyStart = procMemory(proxy.pid)
  if (want('proxy')) paths.push({ name: 'proxy', port: PORTS.proxy, mode: 'default', note: 'curl (EPSV) -> ftp-pasv-proxy -> vsftpd', cpuPid: proxy.pid })
  if (want('proxy-pasv')) {
    paths.push({ name: 'proxy-pasv', port: PORTS.proxy, mode: 'pasv', note: 'curl (PASV, honours the rewritten 227) -> ftp-pasv-proxy -> vsftpd', cpuPid: proxy.pid })
  }

  if (want('mod_proxy')) {
    const mp = await startModProxy(o.tmp, notes)
    if (mp !== null) {
      o.cleanup.push(() => mp.stop())
      // A process per session: no single PID to read CPU time from.
      paths.push({ name: 'mod_proxy', port: PORTS.modProxy, mode: 'default', note: 'curl (EPSV) -> ProFTPD mod_proxy (EPSV to backend) -> vsftpd', cpuPid: null })
    }
  }
  if (want('haproxy')) {
    const pid = await startRelay('haproxy', vs, HAPROXY_ADDR, PORTS.haproxyVsftpd, PORTS.haproxyData, o, notes)
    // haproxy -db runs one process (its threads count in its CPU time).
    if (pid !== null) paths.push({ name: 'haproxy', port: PORTS.haproxyVsftpd, mode: 'pasv', note: 'curl (PASV) -> vsftpd; data via haproxy 2.6 mode tcp', cpuPid: pid })
  }
  if (want('socat')) {
    const pid = await startRelay('socat', vs, SOCAT_ADDR, PORTS.socatVsftpd, PORTS.socatData, o, notes)
    // socat forks a child per connection, which does the copying: its time is not the parent's.
    if (pid !== null) paths.push({ name: 'socat', port: PORTS.socatVsftpd, mode: 'pasv', note: 'curl (PASV) -> vsftpd; data via socat -b 131072', cpuPid: null })
  }
  if (want('node-pipe')) {
    const pid = await startRelay('node-pipe', vs, NODE_ADDR, PORTS.nodeVsftpd, PORTS.nodeData, o, notes)
    if (pid !== null) paths.push({ name: 'node-pipe', port: PORTS.nodeVsftpd, mode: 'pasv', note: 'curl (PASV) -> vsftpd; data via Node net + pipe()', cpuPid: pid })
  }

  const measure = async (p: PathSpec, op: 'RETR' | 'STOR'): Promise<Sample> => {
    const cpu0 = p.cpuPid === null ? 0 : procCpuSeconds(p.cpuPid)
    const s = op === 'RETR' ? await curlRetr(p, o.size) : await curlStor(p, payload.path, o.size)
    return { ...s, relayCpu: p.cpuPid === null ? null : procCpuSeconds(p.cpuPid) - cpu0 }
  }

  // Rounds interleave the paths (direct, proxy, ..., direct, proxy, ...) so that a slow phase of
  // the machine hits every path alike; the first round warms caches and the proxy's JIT and is
  // not counted.
  const retr = new Map<string, Sample[]>(paths.map((p) => [p.name, []]))
  for (let round = 0; round <= o.runs; round++) {
    for (const p of paths) {
      const s = await measure(p, 'RETR')
      o.log(`RETR ${round === 0 ? 'warm-up' : `run ${round}`} ${p.name}: ${s.mbps.toFixed(0)} MB/s`)
      if (round > 0) retr.get(p.name)!.push(s)
    }
  }
  const storPaths = o.stor ? paths.filter((p) => p.name === 'direct' || p.name === 'proxy') : []
  const stor = new Map<string, Sample[]>(storPaths.map((p) => [p.name, []]))
  for (let round = 0; round <= o.runs && storPaths.length > 0; round++) {
    for (const p of storPaths) {
      const s = await measure(p, 'STOR')
      o.log(`STOR ${round === 0 ? 'warm-up' : `run ${round}`} ${p.name}: ${s.mbps.toFixed(0)} MB/s`)
      if (round > 0) stor.get(p.name)!.push(s)
    }
  }
  const proxyEnd = procMemory(proxy.pid)
  if (proxy.warnings.length > 0) notes.push(`the proxy logged ${proxy.warnings.length} warning(s); first: ${JSON.stringify(proxy.warnings[0])}`)

  const cpus = (await runProcess('nproc', [], { timeoutMs: 5000 })).stdout.trim()
  const lines = [
    `Run ${started.toISOString()}, ${cpus} cores, Node ${process.version}, payload ${o.size / MiB} MiB, ${o.runs} runs per path (median; one warm-up run not counted), files on ${o.tmp}.`,
    `ftp-pasv-proxy: ${o.proxyMain}.`,
    // Anything else running on the machine takes CPU from sender, receiver and relay alike.
    `Load average (1, 5, 15 min) at the start ${loadStart}, at the end ${loadAvg()}.`,
    '',
    ...table('RETR', paths, retr),
    '',
    ...(storPaths.length > 0 ? [...table('STOR', storPaths, stor), ''] : []),
    `ftp-pasv-proxy memory: RSS ${(proxyStart.rss / MiB).toFixed(1)} MiB after start, ${(proxyEnd.rss / MiB).toFixed(1)} MiB at the end, peak (VmHWM) ${(proxyEnd.hwm / MiB).toFixed(1)} MiB over all its runs.`,
    ...notes.map((n) => `Note: ${n}`),
    '',
  ]
  return lines.join('\n')
}

function loadAvg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
}

function table(op: string, paths: PathSpec[], samples: Map<string, Sample[]>): string[] {
  const direct = median(samples.get('direct')!.map((s) => s.mbps))
  const rows = [
    `| ${op} path | what | median MB/s | min-max MB/s | ratio to direct | relay CPU s per GiB |`,
    '|---|---|---|---|---|---|',
  ]
  for (const p of paths) {
    const ss = samples.get(p.name)!
    const mb = ss.map((s) => s.mbps)
    const cpu = ss.filter((s) => s.relayCpu !== null).map((s) => (s.relayCpu! / s.bytes) * 1024 * MiB)
    rows.push(
      `| ${p.name} | ${p.note} | ${median(mb).toFixed(0)} | ${Math.min(...mb).toFixed(0)}-${Math.max(...mb).toFixed(0)} | ${(median(mb) / direct).toFixed(2)} | ${cpu.length > 0 ? median(cpu).toFixed(2) : ''} |`,
    )
  }
  return rows
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
  const args = ['-q', '-sS', '--max-time', String(maxSeconds(size)), ...CURL_MODE[p.mode], '-T', file, '-w', '%{size_upload} %{speed_upload}']
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
async function startModProxy(tmp: string, notes: string[]): Promise<Daemon | null> {
  const proftpd = optionalBinary('proftpd', 'proftpd')
  const modProxy = join(REPO, '.cache/debs/proftpd-mod-proxy/usr/lib/proftpd/mod_proxy.so')
  const modDir = join(REPO, '.cache/debs/proftpd/usr/lib/proftpd')
  if (proftpd === null || !existsSync(modProxy) || !existsSync(join(modDir, 'mod_tls.so'))) {
    notes.push('mod_proxy skipped: proftpd, mod_tls.so or mod_proxy.so missing (apt-get download proftpd-mod-proxy; dpkg-deb -x it into .cache/debs/proftpd-mod-proxy)')
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
    `Port ${PORTS.modProxy}`,
    `PassivePorts ${PORTS.modProxyPasv.min} ${PORTS.modProxyPasv.max}`,
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
    `  ProxyReverseServers ftp://127.0.0.1:${PORTS.vsftpd}`,
    '  ProxyDataTransferPolicy EPSV',
    '</IfModule>',
  ]
  await writeFile(join(dir, 'proftpd.conf'), conf.join('\n') + '\n')
  const d = await startDaemon(proftpd, ['-n', '-c', join(dir, 'proftpd.conf')], { group: true })
  try {
    await waitFor('proftpd mod_proxy', d, () => greets(PORTS.modProxy))
  } catch (err) {
    await d.stop()
    await rm(dir, { recursive: true, force: true })
    notes.push(`mod_proxy skipped: ${(err as Error).message}`)
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
  addr: string,
  ctrlPort: number,
  dataPort: number,
  o: BenchOptions,
  notes: string[],
): Promise<number | null> {
  const bin = kind === 'node-pipe' ? process.execPath : optionalBinary(kind, kind)
  if (bin === null) {
    notes.push(`${kind} skipped: not found (apt-get download ${kind}; dpkg-deb -x it into .cache/debs/${kind})`)
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
    notes.push(`${kind} skipped: ${(err as Error).message}`)
    return null
  }
  return d.pid
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`throughput: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  },
)
