// `npm run bench`: the whole benchmark of issue 12 in one process run, one markdown report to
// stdout and to bench/report.md (or --out). npm runs scripts/bench-deps.sh (the servers, haproxy,
// socat, ProFTPD mod_proxy) and `npm run build` first; this file is the part after that:
//
//   node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/run.ts [--help]
//
// Sections, in this order, each with its own servers and its own proxy process (stopped before
// the next section starts, so that none competes with another for the 2 cores):
//   throughput  RETR and STOR on /dev/shm: direct, proxy (EPSV, PASV), mod_proxy, haproxy, socat,
//               node-pipe; ratios to direct, relay CPU s per GiB (bench/throughput.ts)
//   latency     PASV written to data connection established, p50/p99 (bench/latency.ts)
//   sessions    N concurrent real sessions to vsftpd (bench/sessions.ts)
//   idle        N idle sessions to a light double: RSS, descriptors, heap (bench/idle.ts)
// The report ends with the figures set against issue 12's targets.
//
// Ports: control ports from --port-base (default 24000): the throughput section's base+0..112
// (as bench/throughput.ts run alone), then base+120..125. Passive ranges and pools from
// --pool-base (default 16000): below the ephemeral range (32768) and outside 29000-31999, where
// the tests' own ranges are; their size grows with --latency-tries and --sessions. Every address is
// in 127.0.0.0/8. Every wait and loop has a deadline.
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, release, totalmem } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { runProcess } from '../test/e2e/lib/proc.js'
import { runIdle, type IdleResult } from './idle.js'
import { runLatency, type LatencyResult } from './latency.js'
import { fdLimits, loadAvg, MiB, PROXY_MAIN, REPO } from './lib.js'
import { runSessions, type SessionsResult } from './sessions.js'
import { defaultTmp, parseSize, PEERS, runThroughput, THROUGHPUT_PATHS, type ThroughputResult } from './throughput.js'

const SECTIONS = ['throughput', 'latency', 'sessions', 'idle'] as const
type Section = (typeof SECTIONS)[number]

const HELP = `npm run bench [-- OPTIONS]: ftp-pasv-proxy against direct and its peers, one report (issue 12).
  --size SIZE           RETR/STOR payload, K/M/G binary (default 1G)
  --runs N              measured throughput runs per path, median reported (default 5; one warm-up more)
  --latency-tries N     PASV-to-connected tries per side (default 1000)
  --sessions N          concurrent real sessions against vsftpd (default 1000)
  --idle N              idle sessions per round against the double (default 9000)
  --only LIST           comma-separated subset of ${SECTIONS.join(',')} (default all)
  --paths LIST          throughput paths, a subset of ${THROUGHPUT_PATHS.join(',')} (default all)
  --out FILE            where the report is written besides stdout (default bench/report.md)
  --require-peers       exit 1 when a peer (${PEERS.join(', ')}) cannot run (default: when CI=true)
  --proxy-main FILE     the proxy's built entry point (default dist/main.js)
  --heap-snapshots DIR  the idle section's proxy writes heap snapshots there, sessions open and closed (default: none)
  --settle-ms N         pause before each idle reading (default 2000)
  --port-base N         first control port (default 24000; uses base..base+125)
  --pool-base N         first port of the passive ranges and pools (default 16000)
  --tmpdir DIR          where the servers keep files (default /dev/shm)
`

interface Options {
  size: number
  runs: number
  latencyTries: number
  sessions: number
  idle: number
  only: readonly Section[]
  paths: readonly string[] | null
  out: string
  requirePeers: boolean
  proxyMain: string
  heapSnapshots: string | null
  settleMs: number
  portBase: number
  poolBase: number
  tmp: string
}

function integer(name: string, text: string, min: number, max: number): number {
  const v = Number(text)
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`--${name}: "${text}" is not an integer from ${min} to ${max}`)
  return v
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      size: { type: 'string', default: '1G' },
      runs: { type: 'string', default: '5' },
      'latency-tries': { type: 'string', default: '1000' },
      sessions: { type: 'string', default: '1000' },
      idle: { type: 'string', default: '9000' },
      only: { type: 'string' },
      paths: { type: 'string' },
      out: { type: 'string' },
      'require-peers': { type: 'boolean', default: process.env['CI'] === 'true' },
      'proxy-main': { type: 'string' },
      'heap-snapshots': { type: 'string' },
      'settle-ms': { type: 'string', default: '2000' },
      'port-base': { type: 'string', default: '24000' },
      'pool-base': { type: 'string', default: '16000' },
      tmpdir: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) return null
  const only = values.only === undefined ? [...SECTIONS] : values.only.split(',')
  for (const s of only) if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`--only: "${s}" is not one of ${SECTIONS.join(', ')}`)
  const paths = values.paths?.split(',') ?? null
  for (const p of paths ?? []) if (!(THROUGHPUT_PATHS as readonly string[]).includes(p)) throw new Error(`--paths: "${p}" is not one of ${THROUGHPUT_PATHS.join(', ')}`)
  const size = parseSize(values.size)
  if (size < 1 || size > 64 * 1024 * MiB) throw new Error('--size: from 1 byte to 64G')
  return {
    size,
    runs: integer('runs', values.runs, 1, 100),
    latencyTries: integer('latency-tries', values['latency-tries'], 1, 100_000),
    sessions: integer('sessions', values.sessions, 1, 3000),
    idle: integer('idle', values.idle, 1, 20_000),
    only: only as Section[],
    paths,
    out: resolve(values.out ?? join(REPO, 'bench/report.md')),
    requirePeers: values['require-peers'],
    proxyMain: resolve(values['proxy-main'] ?? PROXY_MAIN),
    heapSnapshots: values['heap-snapshots'] === undefined ? null : resolve(values['heap-snapshots']),
    settleMs: integer('settle-ms', values['settle-ms'], 0, 60_000),
    portBase: integer('port-base', values['port-base'], 1024, 32_767 - 125),
    poolBase: integer('pool-base', values['pool-base'], 1024, 32_767),
    tmp: values.tmpdir ?? defaultTmp(),
  }
}

interface Range {
  min: number
  max: number
}

/**
 * The passive ranges and pools of the sections that run, laid out from --pool-base; each checked
 * below 32768 and outside 29000-31999.
 */
function layoutPools(o: Options): { latencyVsftpd: Range; latencyProxy: Range; sessionsProxy: Range; sessionsVsftpd: Range } {
  let next = o.poolBase
  const take = (section: Section, what: string, size: number): Range => {
    if (!o.only.includes(section) && !(section === 'latency' && o.only.includes('idle'))) return { min: 0, max: -1 }
    const r = { min: next, max: next + size - 1 }
    next += size
    if (r.max > 32_767) throw new Error(`--pool-base ${o.poolBase}: the ${section} section's ${what} would end at ${r.max}, in the ephemeral range (32768 and up)`)
    if (r.min <= 31_999 && r.max >= 29_000) throw new Error(`--pool-base ${o.poolBase}: the ${section} section's ${what} (${r.min}-${r.max}) overlaps 29000-31999, the tests' ranges`)
    return r
  }
  // Both pools of the latency section see one connection at a time but a thousand in a minute,
  // and vsftpd picks a random port of its range for each PASV: room for TIME_WAIT. The idle
  // section's proxy leases no port and borrows the latency section's pool.
  const latencySize = Math.min(200, Math.max(20, Math.ceil(o.latencyTries / 5)))
  return {
    latencyVsftpd: take('latency', 'vsftpd passive range', latencySize),
    latencyProxy: take('latency', 'proxy pool', latencySize),
    // 1.5 ports per concurrent session for the proxy (a lease each, and ports in TIME_WAIT); 5 for
    // vsftpd, which gives up a PASV with "500 OOPS" after 9 random ports it cannot bind: with 2.5,
    // one PASV in 1,000 sessions got it (2026-12-01 22:10).
    sessionsProxy: take('sessions', 'proxy pool', Math.max(50, Math.ceil(o.sessions * 1.5))),
    sessionsVsftpd: take('sessions', 'vsftpd passive range', Math.max(100, Math.ceil(o.sessions * 5))),
  }
}

/**
 * Node raises its own soft limit on open files to the hard one at start; children inherit it.
 * The idle section needs about 2 per session in the proxy and 1 in the bench and the double: when
 * the hard limit is lower, raise it (root may) with prlimit on this process.
 */
async function ensureFdLimit(need: number): Promise<string> {
  const before = fdLimits('self')
  if (before.soft >= need) return `open files limit of the bench (inherited by the proxy) ${before.soft}/${before.hard} (soft/hard), ${need} needed`
  const r = await runProcess('prlimit', ['--pid', String(process.pid), `--nofile=${need}:${Math.max(need, before.hard)}`], { timeoutMs: 10_000 })
  const after = fdLimits('self')
  if (after.soft < need) throw new Error(`the idle section needs ${need} open files; the limit is ${after.soft}/${after.hard} and prlimit could not raise it (${r.stderr.trim()}): run as root or with ulimit -n ${need}`)
  return `open files limit raised with prlimit from ${before.soft}/${before.hard} to ${after.soft}/${after.hard} (soft/hard), ${need} needed`
}

interface Outcome<T> {
  result: T | null
  error: string | null
  seconds: number
}

async function section<T>(name: Section, o: Options, log: (s: string) => void, run: (cleanup: Array<() => Promise<unknown>>) => Promise<T>): Promise<Outcome<T> | null> {
  if (!o.only.includes(name)) return null
  const cleanup: Array<() => Promise<unknown>> = []
  active = cleanup
  const started = Date.now()
  log(`== ${name}`)
  try {
    return { result: await run(cleanup), error: null, seconds: (Date.now() - started) / 1000 }
  } catch (err) {
    log(`${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    return { result: null, error: err instanceof Error ? err.message : String(err), seconds: (Date.now() - started) / 1000 }
  } finally {
    // Last started, first stopped.
    for (const c of cleanup.reverse()) await c().catch((e: unknown) => log(`cleanup: ${String(e)}`))
    active = null
  }
}

// The section running now, for SIGINT: its servers hold ports and gigabytes of /dev/shm.
let active: Array<() => Promise<unknown>> | null = null

async function main(argv: string[]): Promise<number> {
  const o = parseOptions(argv)
  if (o === null) {
    process.stdout.write(HELP)
    return 0
  }
  const log = (s: string): void => void process.stderr.write(`${s}\n`)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig}: stopping what this bench started`)
      void Promise.allSettled((active ?? []).reverse().map((c) => c())).finally(() => process.exit(130))
    })
  }
  const pools = layoutPools(o)
  // The servers' temp dirs (test/e2e/lib/servers.ts) come from os.tmpdir(), which reads TMPDIR.
  process.env['TMPDIR'] = o.tmp
  if (o.heapSnapshots !== null) await mkdir(o.heapSnapshots, { recursive: true })
  const fdNote = o.only.includes('idle') ? await ensureFdLimit(2 * o.idle + 1000) : `open files limit ${fdLimits('self').soft}/${fdLimits('self').hard}`

  const started = new Date()
  const loadStart = loadAvg()
  const b = o.portBase

  const throughput = await section('throughput', o, log, (cleanup) =>
    runThroughput({ size: o.size, runs: o.runs, tmp: o.tmp, only: o.paths, stor: true, proxyMain: o.proxyMain, portBase: b, cleanup, log }))
  const latency = await section('latency', o, log, (cleanup) =>
    runLatency({
      tries: o.latencyTries,
      ports: { vsftpd: b + 120, vsftpdPasv: pools.latencyVsftpd, proxy: b + 121, proxyPool: pools.latencyProxy },
      proxyMain: o.proxyMain,
      deadlineMs: 60_000 + o.latencyTries * 100,
      cleanup,
      log,
    }))
  const sessions = await section('sessions', o, log, (cleanup) =>
    runSessions({
      sessions: o.sessions,
      ports: { vsftpd: b + 122, vsftpdPasv: pools.sessionsVsftpd, proxy: b + 123, proxyPool: pools.sessionsProxy },
      proxyMain: o.proxyMain,
      cleanup,
      log,
    }))
  const idle = await section('idle', o, log, (cleanup) =>
    runIdle({
      sessions: o.idle,
      // The idle proxy leases no port: the latency section's pool, free by then.
      ports: { double: b + 124, proxy: b + 125, proxyPool: pools.latencyProxy },
      proxyMain: o.proxyMain,
      heapSnapshots: o.heapSnapshots,
      settleMs: o.settleMs,
      deadlineMs: 60_000 + o.idle * 20,
      cleanup,
      log,
    }))

  const header = await describeRun(o, argv, started, loadStart, fdNote)
  const body: string[] = []
  const errors: string[] = []
  const add = <T>(title: string, out: Outcome<T> | null, lines: (r: T) => string[]): void => {
    if (out === null) return
    body.push(`## ${title}`, '', `Section time: ${out.seconds.toFixed(0)} s.`, '')
    if (out.result !== null) body.push(...lines(out.result), '')
    else {
      body.push(`**The section failed:** ${out.error}`, '')
      errors.push(`${title}: ${out.error}`)
    }
  }
  add(`1. Throughput: RETR and STOR of ${fmtSize(o.size)}`, throughput, (r) => r.lines)
  add(`2. PASV sent to data connection established (${o.latencyTries} tries)`, latency, (r) => r.lines)
  add(`3. ${o.sessions} concurrent sessions against vsftpd`, sessions, (r) => r.lines)
  add(`4. ${o.idle} idle sessions against a light server double`, idle, (r) => r.lines)

  const notes = [
    ...(throughput?.result?.skipped ?? []),
    ...(throughput?.result?.notes ?? []),
    ...(latency?.result?.notes ?? []),
    ...(sessions?.result?.notes ?? []),
    ...(idle?.result?.notes ?? []),
  ]
  const finished = new Date()
  const report = [
    ...header,
    `Finished ${finished.toISOString()} (${((finished.getTime() - started.getTime()) / 1000).toFixed(0)} s); load average at the end ${loadAvg()}.`,
    '',
    ...body,
    '## Against the targets of issue 12',
    '',
    ...targets(throughput?.result ?? null, latency?.result ?? null, sessions?.result ?? null, idle?.result ?? null),
    '',
    ...(notes.length > 0 ? ['## Notes', '', ...notes.map((n) => `- ${n}`), ''] : []),
  ].join('\n')
  process.stdout.write(report)
  await mkdir(dirname(o.out), { recursive: true })
  await writeFile(o.out, report)
  log(`report written to ${o.out}`)

  const skipped = throughput?.result?.skipped ?? []
  if (o.requirePeers && skipped.length > 0) {
    log(`--require-peers: ${skipped.join('; ')}`)
    return 1
  }
  if (errors.length > 0) {
    log(`sections failed: ${errors.join('; ')}`)
    return 1
  }
  return 0
}

function fmtSize(bytes: number): string {
  if (bytes % (1024 * MiB) === 0) return `${bytes / (1024 * MiB)} GiB`
  if (bytes % MiB === 0) return `${bytes / MiB} MiB`
  return `${bytes} bytes`
}

async function describeRun(o: Options, argv: string[], started: Date, loadStart: string, fdNote: string): Promise<string[]> {
  const git = async (args: string[]): Promise<string> => {
    try {
      return (await runProcess('git', ['-C', REPO, ...args], { timeoutMs: 10_000 })).stdout.trim()
    } catch {
      return ''
    }
  }
  const commit = await git(['rev-parse', '--short', 'HEAD'])
  const dirty = (await git(['status', '--porcelain', '--', 'src'])) !== ''
  const cpu = cpus()
  return [
    '# ftp-pasv-proxy benchmark',
    '',
    `Started ${started.toISOString()}. Machine: ${cpu.length} x ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / (1024 * MiB)).toFixed(0)} GiB RAM, Linux ${release()}, Node ${process.version}. Load average (1, 5, 15 min) at the start ${loadStart}: other work on the machine takes CPU from every path alike.`,
    `Command: \`npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}\` (bench/run.ts). Proxy: ${o.proxyMain === PROXY_MAIN ? `dist/main.js built from ${commit || 'an unknown commit'}${dirty ? ' with uncommitted changes in src/' : ''}` : o.proxyMain}. Files on ${o.tmp}; ${fdNote}.`,
    '',
  ]
}

const yes = (ok: boolean): string => (ok ? 'yes' : '**no**')

function targets(t: ThroughputResult | null, l: LatencyResult | null, s: SessionsResult | null, i: IdleResult | null): string[] {
  const rows = ['| target | measured | met |', '|---|---|---|']
  if (t !== null) {
    for (const op of ['RETR', 'STOR'] as const) {
      const of = (name: string) => t.stats.find((x) => x.op === op && x.name === name)
      const peers = PEERS.map(of).filter((x) => x !== undefined)
      const best = peers.reduce<(typeof peers)[number] | undefined>((a, x) => (a === undefined || x.ratio > a.ratio ? x : a), undefined)
      for (const name of ['proxy', 'proxy-pasv']) {
        const p = of(name)
        if (p === undefined) continue
        if (best !== undefined) rows.push(`| ${op} ${name} at or above the best peer (ratio to direct) | ${p.ratio.toFixed(2)} vs ${best.name} ${best.ratio.toFixed(2)} | ${yes(p.ratio >= best.ratio)} |`)
        rows.push(`| ${op} ${name}: 0.8 of direct (the aim) | ${p.ratio.toFixed(2)} | ${yes(p.ratio >= 0.8)} |`)
      }
      const proxy = of('proxy')
      const haproxy = of('haproxy')
      if (proxy?.cpuPerGiB != null && haproxy?.cpuPerGiB != null) {
        rows.push(`| ${op}: proxy CPU s per GiB no higher than haproxy's | ${proxy.cpuPerGiB.toFixed(2)} vs ${haproxy.cpuPerGiB.toFixed(2)} | ${yes(proxy.cpuPerGiB <= haproxy.cpuPerGiB)} |`)
      }
    }
  }
  if (l !== null) {
    const d50 = l.proxy.p50 - l.direct.p50
    const d99 = l.proxy.p99 - l.direct.p99
    rows.push(`| PASV to connected: p50 at most 1 ms over direct | +${d50.toFixed(3)} ms | ${yes(d50 <= 1)} |`)
    rows.push(`| PASV to connected: p99 at most 5 ms over direct | +${d99.toFixed(3)} ms | ${yes(d99 <= 5)} |`)
  }
  if (s !== null) rows.push(`| ${s.sessions} concurrent real sessions all succeed | ${s.ok} succeeded, ${s.failed} failed | ${yes(s.failed === 0)} |`)
  if (i !== null) {
    i.rounds.forEach((r, k) => {
      const perKiB = (r.open.rss - r.before.rssAfterGc) / r.opened / 1024
      const afterGcKiB = (r.open.rssAfterGc - r.before.rssAfterGc) / r.opened / 1024
      rows.push(`| round ${k + 1}: at most 8 KiB of proxy RSS per idle session (as an operator reads it) | ${perKiB.toFixed(1)} KiB (${afterGcKiB.toFixed(1)} after a forced GC) | ${yes(perKiB <= 8)} |`)
      rows.push(`| round ${k + 1}: descriptors back to the round's start after close | ${r.closed.fds} vs ${r.before.fds} | ${yes(r.closed.fds <= r.before.fds)} |`)
      const pct = ((r.closed.heap - i.baseline.heap) / i.baseline.heap) * 100
      rows.push(`| round ${k + 1}: heapUsed after close within 10% of the proxy at rest | ${pct >= 0 ? '+' : ''}${pct.toFixed(1)}% | ${yes(Math.abs(pct) <= 10)} |`)
    })
    const [r1, r2] = i.rounds
    if (r1 !== undefined && r2 !== undefined) {
      // Whatever a session leaks, it keeps at least one V8 object, 16 bytes or more; growth below
      // that per session of the round is the harness's own (its inspector and /metrics requests
      // leave a few KiB each) or V8's, not one leak per session.
      const grew = r2.closed.heap - r1.closed.heap
      const perSession = grew / r2.opened
      rows.push(`| a second round does not grow the heap (round 2 closed minus round 1 closed: under 16 bytes per session of the round) | ${grew >= 0 ? '+' : ''}${(grew / 1024).toFixed(0)} KiB, ${perSession.toFixed(1)} bytes per session | ${yes(perSession < 16)} |`)
    }
  }
  return rows
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  },
)
