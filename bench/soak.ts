// Soak: N concurrent FTP clients doing RETR and STOR through ftp-pasv-proxy in front of vsftpd for
// a bounded time, every transfer checked by sha256, then the proxy's file descriptors, pool ports
// and sessions compared with where they started, and its RSS after the run with its RSS after
// the first 10 s.
//
//   npm run build
//   node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/soak.ts [--seconds 300] [--clients 50]
//
// Exit 0 when every check holds, 1 otherwise. test/e2e/soak.test.ts runs runSoak() for 30 s.
//
// The proxy runs as its own process (the built CLI, dist/main.js), not in this one. In-process
// would give direct access to the pool and the session set, but then its RSS and its open file
// descriptors would include the 50 clients' sockets, buffers and hashing, and the clients'
// garbage would be collected on the proxy's heap: a leak in either would be blamed on the other.
// As a child, /proc/PID/status and /proc/PID/fd are the proxy's alone, and pool ports and sessions
// come from its own /metrics (ftp_proxy_port_pool_in_use, ftp_proxy_sessions_active), which is
// also how an operator would see them. The clients are RawFtp control connections in this process
// (no child per transfer: 50 curl processes a second would measure fork, not the proxy).
//
// vsftpd advertises 127.0.0.99, where nothing listens (the PRODFTP fault): every transfer relies on
// the proxy's rewrite. Half the transfers use PASV, half EPSV, so both rewrites are soaked.
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync, realpathSync } from 'node:fs'
import { readFile, unlink } from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { pasvEndpoint, RawFtp, type RawReply } from '../test/fixtures/raw-ftp.js'
import { makeRandomFile, startVsftpd } from '../test/e2e/lib/servers.js'
import { fmtMiB, MiB, openFds, PROXY_MAIN, procMemory, sample, scrape, sleep, startProxyProcess, type ProxyProcess } from './lib.js'

export interface SoakOptions {
  /** How long clients keep starting transfers, seconds. */
  seconds: number
  /** Concurrent client sessions. */
  clients: number
  /**
   * First of 400 ports: vsftpd on base, the proxy on base+1, the proxy's pool base+10..base+99,
   * vsftpd's passive ports base+100..base+399. Default 24200 (the test uses 24600).
   */
  portBase?: number
  /** The proxy's built entry point; default dist/main.js. */
  proxyMain?: string
  /** Progress lines (once every 10 s); silent when absent. */
  log?: (line: string) => void
}

export interface SoakReport {
  /** ISO time the clients started, and the proxy entry point that ran. */
  startedAt: string
  proxyMain: string
  /** /proc/loadavg (1, 5, 15 min) at the start and at the end: other work on the machine. */
  loadStart: string
  loadEnd: string
  seconds: number
  clients: number
  elapsedSeconds: number
  /** Client sessions opened (connect, login). */
  sessions: number
  /** Transfers started; `transfers - failures` of them completed with equal sha256. */
  transfers: number
  retr: number
  stor: number
  /** Payload bytes that arrived and were checked equal. */
  bytes: number
  /** Everything that went wrong: a transfer, a login, a PASV/EPSV, a QUIT. */
  failures: number
  /** Up to 20 failure descriptions, the first ones. */
  failureSamples: string[]
  /** Bytes that did not arrive: for each transfer that came out short, expected minus received. */
  lostBytes: number
  /** Transfers whose bytes arrived but whose sha256 differs. */
  mismatches: number
  fdsBefore: number
  fdsAfter: number
  poolInUseBefore: number
  poolInUseAfter: number
  sessionsBefore: number
  sessionsAfter: number
  /** Proxy RSS, bytes: just before the clients start, 10 s into the load, after the run, peak. */
  rssStart: number
  rssAfter10s: number
  rssEnd: number
  rssPeak: number
  /** The proxy's own counters at the end. */
  proxyCounters: { dataOk: number; dataFailed: number; dataCancelled: number; bytesDownload: number; bytesUpload: number; sessionsTotal: number }
  /** The proxy's log lines at warn or above, and the first few of them. */
  proxyWarnings: number
  proxyWarningSamples: string[]
}

// Payload sizes, picked at random per transfer: empty, a sub-MSS one, an odd size, and sizes
// that span many socket buffers. Mean about 2.2 MiB.
const SIZES = [0, 1000, 100_003, 1 * MiB, 4 * MiB, 8 * MiB]
// One step (a reply, a whole data transfer) that takes longer than this is a failure.
const STEP_MS = 60_000
const SESSION_MAX_TRANSFERS = 8
// How long the proxy has to release everything after the last client left.
const SETTLE_MS = 15_000
const RSS_SAMPLE_MS = 1000

type Passive = 'PASV' | 'EPSV'

class SoakFailure extends Error {}

function pick<T>(xs: readonly T[]): T {
  return xs[Math.floor(Math.random() * xs.length)]!
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SoakFailure(`${what}: nothing within ${ms} ms`)), ms)
  })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}

function loadAvg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

interface Counters {
  sessions: number
  transfers: number
  retr: number
  stor: number
  bytes: number
  failures: number
  failureSamples: string[]
  lostBytes: number
  mismatches: number
}

interface Ctx {
  host: string
  port: number
  deadline: number
  files: Array<{ name: string; size: number; sha256: string }>
  /** Random bytes that STOR payloads are sliced from. */
  pool: Buffer
  uploadRoot: string
  c: Counters
}

function fail(ctx: Ctx, what: string): void {
  ctx.c.failures++
  if (ctx.c.failureSamples.length < 20) ctx.c.failureSamples.push(what)
}

/** PASV or EPSV on the control connection; the endpoint the client is to dial. */
async function passive(ctrl: RawFtp, mode: Passive, host: string): Promise<{ host: string; port: number }> {
  const r = await ctrl.cmd(mode)
  if (mode === 'PASV') {
    if (r.code !== 227) throw new SoakFailure(`PASV: ${r.code} ${r.text}`)
    return pasvEndpoint(r.text)
  }
  // RFC 2428 3: "229 ... (<d><d><d><tcp-port><d>)"; the host is the control connection's.
  const m = /\((.)\1\1(\d+)\1\)/.exec(r.text)
  if (r.code !== 229 || m === null) throw new SoakFailure(`EPSV: ${r.code} ${r.text}`)
  return { host, port: Number(m[2]) }
}

/** The data connection, connected; its errors are kept for whoever waits on it. */
async function dial(ep: { host: string; port: number }): Promise<net.Socket> {
  const s = net.connect({ host: ep.host, port: ep.port })
  s.on('error', () => {})
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        s.once('connect', resolve)
        s.once('error', reject)
      }),
      STEP_MS,
      `data connect ${ep.host}:${ep.port}`,
    )
  } catch (err) {
    s.destroy()
    throw new SoakFailure(`data connect ${ep.host}:${ep.port}: ${(err as Error).message}`)
  }
  return s
}

/** A preliminary reply (RFC 959 4.2: 1yz, here 125 or 150) before the data flows. */
async function preliminary(ctrl: RawFtp, cmd: string): Promise<void> {
  const r = await ctrl.reply(STEP_MS)
  if (r === null) throw new SoakFailure(`${cmd}: control connection closed`)
  if (r.code !== 125 && r.code !== 150) throw new SoakFailure(`${cmd}: ${r.code} ${r.text}`)
}

async function final(ctrl: RawFtp, cmd: string): Promise<RawReply> {
  const r = await ctrl.reply(STEP_MS)
  if (r === null) throw new SoakFailure(`${cmd}: control connection closed before the final reply`)
  if (r.code !== 226) throw new SoakFailure(`${cmd}: ${r.code} ${r.text}`)
  return r
}

async function retr(ctx: Ctx, ctrl: RawFtp, mode: Passive): Promise<void> {
  const file = pick(ctx.files)
  const what = `RETR ${file.name} (${mode})`
  ctx.c.retr++
  const data = await dial(await passive(ctrl, mode, ctx.host))
  try {
    const hash = createHash('sha256')
    let received = 0
    // Hashed as it arrives: the client holds no copy of the file.
    const done = new Promise<void>((resolve, reject) => {
      data.on('data', (b: Buffer) => {
        received += b.length
        hash.update(b)
      })
      data.once('end', resolve)
      data.once('error', reject)
      data.once('close', () => reject(new SoakFailure('data connection closed before its end')))
    })
    done.catch(() => {}) // awaited below; not an unhandled rejection while the replies are read
    ctrl.socket.write(`RETR ${file.name}\r\n`)
    await preliminary(ctrl, what)
    try {
      await withTimeout(done, STEP_MS, `${what} data`)
    } catch (err) {
      ctx.c.lostBytes += Math.max(0, file.size - received)
      throw err
    }
    await final(ctrl, what)
    if (received !== file.size) {
      ctx.c.lostBytes += Math.max(0, file.size - received)
      throw new SoakFailure(`${what}: ${received} bytes of ${file.size}`)
    }
    if (hash.digest('hex') !== file.sha256) {
      ctx.c.mismatches++
      throw new SoakFailure(`${what}: sha256 differs`)
    }
    ctx.c.bytes += received
  } finally {
    data.destroy()
  }
}

async function stor(ctx: Ctx, ctrl: RawFtp, mode: Passive, name: string): Promise<void> {
  const size = pick(SIZES)
  const offset = Math.floor(Math.random() * (ctx.pool.length - size + 1))
  const payload = ctx.pool.subarray(offset, offset + size)
  const what = `STOR ${name} ${size} bytes (${mode})`
  ctx.c.stor++
  const data = await dial(await passive(ctrl, mode, ctx.host))
  try {
    const closed = new Promise<void>((resolve, reject) => {
      data.once('error', reject)
      data.once('close', () => resolve())
    })
    closed.catch(() => {})
    ctrl.socket.write(`STOR ${name}\r\n`)
    await preliminary(ctrl, what)
    // end() respects back-pressure on its own; 'close' comes once the server has closed too.
    data.end(payload)
    await withTimeout(closed, STEP_MS, `${what} data`)
    await final(ctrl, what)
    // What the server stored, read from its disk: checked without the proxy in the way.
    const path = join(ctx.uploadRoot, name)
    const stored = await readFile(path)
    await unlink(path)
    if (stored.length !== size) {
      ctx.c.lostBytes += Math.max(0, size - stored.length)
      throw new SoakFailure(`${what}: the server stored ${stored.length} bytes`)
    }
    if (sha256(stored) !== sha256(payload)) {
      ctx.c.mismatches++
      throw new SoakFailure(`${what}: sha256 differs`)
    }
    ctx.c.bytes += size
  } finally {
    data.destroy()
  }
}

/** One client: sessions of 1..8 transfers, back to back, until the deadline. */
async function client(ctx: Ctx, id: number): Promise<void> {
  let seq = 0
  while (Date.now() < ctx.deadline) {
    let ctrl: RawFtp | null = null
    try {
      ctrl = await withTimeout(RawFtp.connect(ctx.host, ctx.port), STEP_MS, 'connect')
      await ctrl.login()
      ctx.c.sessions++
      const n = 1 + Math.floor(Math.random() * SESSION_MAX_TRANSFERS)
      for (let i = 0; i < n && Date.now() < ctx.deadline; i++) {
        const mode: Passive = Math.random() < 0.5 ? 'PASV' : 'EPSV'
        ctx.c.transfers++
        if (Math.random() < 0.5) await retr(ctx, ctrl, mode)
        else await stor(ctx, ctrl, mode, `upload/c${id}-${seq++}.bin`)
      }
      const bye = await ctrl.cmd('QUIT')
      if (bye.code !== 221) throw new SoakFailure(`QUIT: ${bye.code} ${bye.text}`)
    } catch (err) {
      // The session's state is unknown after any failure: count it and start a fresh one.
      fail(ctx, `client ${id}: ${(err as Error).message}`)
    } finally {
      ctrl?.close()
    }
  }
}

interface ProxyState {
  fds: number
  poolInUse: number
  sessions: number
}

async function proxyState(proxy: ProxyProcess): Promise<ProxyState> {
  // File descriptors first: counted after the scrape, they may include the scrape's own
  // connection, whose end the proxy closes a moment after ours (callers wait 100 ms between
  // reads, so the previous scrape's is gone).
  const fds = openFds(proxy.pid)
  const text = await scrape(proxy.metricsUrl!)
  return {
    fds,
    poolInUse: sample(text, 'ftp_proxy_port_pool_in_use'),
    sessions: sample(text, 'ftp_proxy_sessions_active'),
  }
}

/** Polls until `ok(state)` or `ms` pass; returns the last state read. */
async function settle(proxy: ProxyProcess, ok: (s: ProxyState) => boolean, ms: number): Promise<ProxyState> {
  const end = Date.now() + ms
  let s = await proxyState(proxy)
  while (!ok(s) && Date.now() < end) {
    await sleep(100)
    s = await proxyState(proxy)
  }
  return s
}

export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const base = opts.portBase ?? 24200
  const log = opts.log ?? (() => {})
  if (!(opts.seconds > 0 && opts.seconds <= 3600)) throw new Error('seconds: from 1 to 3600')
  if (!(Number.isInteger(opts.clients) && opts.clients >= 1 && opts.clients <= 80)) {
    // The proxy's pool has 90 ports, one per session at most.
    throw new Error('clients: an integer from 1 to 80')
  }
  // vsftpd 3.0.3 (vsf_privop_pasv_listen) tries 9 random ports of its range and then answers
  // "500 OOPS: vsf_sysutil_bind" and ends the session. With 50 sessions on a 90-port range that
  // happened once in about five 30-s runs (a server-side failure, relayed as is by the proxy). On
  // 300 ports, with at most 50 taken, the odds are at worst (50/300)^9, about 1 in 10^7 per PASV.
  // The proxy's pool hands out a free port whenever one exists and needs no such slack.
  const vs = await startVsftpd({ port: base, pasvMin: base + 100, pasvMax: base + 399, pasvAddress: '127.0.0.99' })
  let proxy: ProxyProcess | null = null
  try {
    const files = await Promise.all(SIZES.map(async (size) => ({ size, ...(await makeRandomFile(vs.root, `f-${size}.bin`, size)), name: `f-${size}.bin` })))
    proxy = await startProxyProcess({ listenPort: base + 1, upstreamPort: base, pool: { min: base + 10, max: base + 99 }, metrics: true, ...(opts.proxyMain === undefined ? {} : { main: opts.proxyMain }) })
    const p = proxy
    // The starting point: what the idle proxy holds once its metrics endpoint has answered once,
    // as the least of ten readings: a transient socket (the readiness probe's connect, made at start
    // and every 20 s while no client is connected) must not raise the bar the run's end is held to.
    await proxyState(p)
    const idle: ProxyState[] = []
    for (let i = 0; i < 10; i++) {
      await sleep(100)
      idle.push(await proxyState(p))
    }
    const before: ProxyState = {
      fds: Math.min(...idle.map((s) => s.fds)),
      poolInUse: Math.min(...idle.map((s) => s.poolInUse)),
      sessions: Math.min(...idle.map((s) => s.sessions)),
    }
    const rssStart = procMemory(p.pid).rss

    const c: Counters = { sessions: 0, transfers: 0, retr: 0, stor: 0, bytes: 0, failures: 0, failureSamples: [], lostBytes: 0, mismatches: 0 }
    const started = Date.now()
    const loadStart = loadAvg()
    const ctx: Ctx = {
      host: '127.0.0.1',
      port: p.port,
      deadline: started + opts.seconds * 1000,
      files,
      pool: randomBytes(Math.max(...SIZES)),
      uploadRoot: vs.root,
      c,
    }
    let rssAfter10s: number | null = null
    let lastRss = rssStart
    const sampler = setInterval(() => {
      try {
        lastRss = procMemory(p.pid).rss
      } catch {
        return // the proxy is gone: the checks below say so
      }
      const t = Date.now() - started
      if (rssAfter10s === null && t >= 10_000) rssAfter10s = lastRss
      if (Math.floor(t / 1000) % 10 === 0) {
        log(`${Math.round(t / 1000)} s: ${c.transfers} transfers, ${fmtMiB(c.bytes)} checked, ${c.failures} failures, proxy RSS ${fmtMiB(lastRss)}`)
      }
    }, RSS_SAMPLE_MS)
    try {
      await Promise.all(Array.from({ length: opts.clients }, (_, i) => client(ctx, i)))
    } finally {
      clearInterval(sampler)
    }
    const elapsedSeconds = (Date.now() - started) / 1000

    const after = await settle(p, (s) => s.fds <= before.fds && s.poolInUse <= before.poolInUse && s.sessions <= before.sessions, SETTLE_MS)
    const mem = procMemory(p.pid)
    const text = await scrape(p.metricsUrl!)
    const counter = (name: string, labels = ''): number => sample(text, name, labels)
    return {
      startedAt: new Date(started).toISOString(),
      proxyMain: opts.proxyMain ?? PROXY_MAIN,
      loadStart,
      loadEnd: loadAvg(),
      seconds: opts.seconds,
      clients: opts.clients,
      elapsedSeconds,
      ...c,
      fdsBefore: before.fds,
      fdsAfter: after.fds,
      poolInUseBefore: before.poolInUse,
      poolInUseAfter: after.poolInUse,
      sessionsBefore: before.sessions,
      sessionsAfter: after.sessions,
      rssStart,
      // A run shorter than 10 s has no 10-s reading: its last sample stands in.
      rssAfter10s: rssAfter10s ?? lastRss,
      rssEnd: mem.rss,
      rssPeak: mem.hwm,
      proxyCounters: {
        dataOk: counter('ftp_proxy_data_connections_total', 'result="ok"'),
        dataFailed: counter('ftp_proxy_data_connections_total', 'result="failed"'),
        dataCancelled: counter('ftp_proxy_data_connections_total', 'result="cancelled"'),
        bytesDownload: counter('ftp_proxy_data_bytes_total', 'direction="download"'),
        bytesUpload: counter('ftp_proxy_data_bytes_total', 'direction="upload"'),
        sessionsTotal: counter('ftp_proxy_sessions_total'),
      },
      proxyWarnings: p.warnings.length,
      proxyWarningSamples: p.warnings.slice(0, 5).map((w) => JSON.stringify(w)),
    }
  } finally {
    await proxy?.stop(10_000)
    await vs.stop()
  }
}

/** The full run's memory rule: RSS after the run within 20% or 16 MiB of RSS after the first 10 s. */
export function rssHolds(r: Pick<SoakReport, 'rssAfter10s' | 'rssEnd'>): boolean {
  // Only growth counts: RSS falling after the load (the heap shrinking) is not a leak.
  return r.rssEnd <= r.rssAfter10s * 1.2 || r.rssEnd - r.rssAfter10s <= 16 * MiB
}

/** Every check of the run, each with whether it held. */
export function soakChecks(r: SoakReport): Array<{ check: string; ok: boolean }> {
  return [
    { check: `transfers completed: ${r.transfers - r.failures} of ${r.transfers}, ${r.failures} failures`, ok: r.failures === 0 && r.transfers > 0 },
    { check: `bytes lost ${r.lostBytes}, sha256 mismatches ${r.mismatches}`, ok: r.lostBytes === 0 && r.mismatches === 0 },
    { check: `open fds ${r.fdsBefore} before, ${r.fdsAfter} after`, ok: r.fdsAfter === r.fdsBefore },
    { check: `pool ports in use ${r.poolInUseBefore} before, ${r.poolInUseAfter} after`, ok: r.poolInUseAfter === r.poolInUseBefore },
    { check: `sessions ${r.sessionsBefore} before, ${r.sessionsAfter} after`, ok: r.sessionsAfter === r.sessionsBefore },
    {
      check: `RSS after the run ${fmtMiB(r.rssEnd)} vs after the first 10 s ${fmtMiB(r.rssAfter10s)} (${(((r.rssEnd - r.rssAfter10s) / r.rssAfter10s) * 100).toFixed(1)}%, within 20% or 16 MiB)`,
      ok: rssHolds(r),
    },
  ]
}

function formatReport(r: SoakReport): string {
  const lines = [
    `started ${r.startedAt}, proxy ${r.proxyMain}, load average ${r.loadStart} at the start, ${r.loadEnd} at the end`,
    `soak: ${r.clients} clients for ${r.seconds} s (${r.elapsedSeconds.toFixed(1)} s with the last transfers), ${r.sessions} sessions`,
    `transfers: ${r.transfers} (${r.retr} RETR, ${r.stor} STOR), ${fmtMiB(r.bytes)} checked by sha256, ${((r.bytes / 1e6) / r.elapsedSeconds).toFixed(0)} MB/s`,
    `proxy RSS: ${fmtMiB(r.rssStart)} at the start, ${fmtMiB(r.rssAfter10s)} after 10 s, ${fmtMiB(r.rssEnd)} after the run, peak ${fmtMiB(r.rssPeak)}`,
    `proxy counters: data connections ok ${r.proxyCounters.dataOk}, failed ${r.proxyCounters.dataFailed}, cancelled ${r.proxyCounters.dataCancelled}; bytes download ${fmtMiB(r.proxyCounters.bytesDownload)}, upload ${fmtMiB(r.proxyCounters.bytesUpload)}; sessions ${r.proxyCounters.sessionsTotal}`,
    `proxy log lines at warn or above: ${r.proxyWarnings}`,
    ...r.proxyWarningSamples.map((w) => `  ${w}`),
    ...soakChecks(r).map((c) => `${c.ok ? 'ok    ' : 'FAILED'} ${c.check}`),
    ...r.failureSamples.map((f) => `  failure: ${f}`),
  ]
  return lines.join('\n') + '\n'
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '300' },
      clients: { type: 'string', default: '50' },
      'port-base': { type: 'string', default: '24200' },
      json: { type: 'boolean', default: false },
      'proxy-main': { type: 'string' },
    },
  })
  const report = await runSoak({
    seconds: Number(values.seconds),
    clients: Number(values.clients),
    portBase: Number(values['port-base']),
    ...(values['proxy-main'] === undefined ? {} : { proxyMain: values['proxy-main'] }),
    log: (l) => void process.stderr.write(`${l}\n`),
  })
  process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report))
  return soakChecks(report).every((c) => c.ok) ? 0 : 1
}

// Run as a program, not when a test imports runSoak.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main().then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      process.stderr.write(`soak: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
      process.exitCode = 1
    },
  )
}
