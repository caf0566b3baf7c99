// Shared pieces of the benchmarks: child processes (the built proxy, peer relays), /proc readings,
// the proxy's /metrics, and small statistics. Every wait here has a deadline: a benchmark that
// hangs tells nobody anything.
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants, readdirSync, readFileSync, realpathSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { findBinary } from '../test/e2e/lib/bin.js'

export const REPO = fileURLToPath(new URL('../', import.meta.url))
export const PROXY_MAIN = join(REPO, 'dist/main.js')

export const MiB = 1024 * 1024

/**
 * Runs `main` when the module at `moduleUrl` is the script node was started with (not when a test
 * imports it); the number it resolves to is the exit code, and a throw prints its stack and exits 1.
 */
export function runIfMain(moduleUrl: string, main: () => Promise<number>): void {
  if (process.argv[1] === undefined || moduleUrl !== pathToFileURL(realpathSync(process.argv[1])).href) return
  main().then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
      process.exitCode = 1
    },
  )
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** The nearest-rank percentile (`p` in 0..100) of `values`: a value that was measured, never an interpolation. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const s = [...values].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * s.length))
  return s[rank - 1]!
}

/** /proc/loadavg's 1, 5 and 15 minute figures: what else the machine was doing. */
export function loadAvg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
}

/** A program unpacked by hand next to the servers (.cache/debs/<pkg>/usr/{s,}bin), or on PATH; null if absent. */
export function optionalBinary(name: string, cachePkg: string): string | null {
  for (const sub of ['usr/sbin', 'usr/bin']) {
    const p = join(REPO, '.cache/debs', cachePkg, sub, name)
    try {
      accessSync(p, constants.X_OK)
      return p
    } catch {
      // not there
    }
  }
  try {
    return findBinary(name)
  } catch {
    return null
  }
}

// ---- /proc ----

export interface ProcMemory {
  /** Resident set size now, bytes. */
  rss: number
  /** Peak resident set size since the process started (VmHWM), bytes. */
  hwm: number
}

/** VmRSS and VmHWM of a process (Linux reports them in kB, i.e. KiB). */
export function procMemory(pid: number): ProcMemory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)
    if (m === null) throw new Error(`/proc/${pid}/status has no ${key}`)
    return Number(m[1]) * 1024
  }
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') }
}

/**
 * User + system CPU time of a process so far, seconds: fields 14 and 15 of /proc/PID/stat, in
 * clock ticks (USER_HZ, 100 on Linux x86-64; proc(5)). Read after the ")" that ends the command
 * name, which may itself contain spaces.
 */
export function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state): field N is fields[N - 3].
  return (Number(fields[11]) + Number(fields[12])) / 100
}

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length
}

/** Fields 3 onwards of /proc/PID/stat (after the ")" that ends the command name); null once the process is gone. */
function statFields(pid: number | string): string[] | null {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return null
  }
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/** PIDs of the live (or not yet reaped) processes whose process group is `pgid`. */
export function groupMembers(pgid: number): number[] {
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    // Field 5 is the process group.
    const f = statFields(name)
    if (f !== null && Number(f[2]) === pgid) pids.push(Number(name))
  }
  return pids
}

/**
 * CPU seconds of a whole process group so far: for every member, its own user + system time
 * (fields 14, 15) and that of its children it has waited for (cutime, cstime: fields 16, 17).
 * A server that forks a process per session or per connection (proftpd, socat) reaps them, so
 * their time moves into the parent's cutime when they exit and is counted either way. Read it
 * when no member is starting or ending (see `settleGroup`): a child that is reaped between the
 * reads of its own and its parent's stat is counted twice or not at all.
 */
export function groupCpuSeconds(pgid: number): number {
  let ticks = 0
  for (const pid of groupMembers(pgid)) {
    const f = statFields(pid)
    if (f !== null) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])
  }
  return ticks / 100
}

/** Waits (at most `timeoutMs`) until the group has no more than `members` processes: the per-connection ones have ended. */
export async function settleGroup(pgid: number, members: number, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (groupMembers(pgid).length <= members) return true
    await sleep(20)
  }
  return false
}

/** The soft and hard limits on open files of a process (/proc/PID/limits). */
export function fdLimits(pid: number | 'self'): { soft: number; hard: number } {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))
  if (m === null) throw new Error(`/proc/${pid}/limits has no "Max open files" line`)
  const n = (v: string): number => (v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v))
  return { soft: n(m[1]!), hard: n(m[2]!) }
}

// ---- child processes ----

export interface Daemon {
  readonly pid: number
  readonly child: ChildProcess
  /** Everything it wrote to stdout and stderr (last 64 KiB). */
  output(): string
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null when killed by a signal). */
  stop(graceMs?: number): Promise<number | null>
}

export interface DaemonOptions {
  /** Called with every complete stdout line (the proxy's pino JSON lines). */
  onLine?: (line: string) => void
  env?: NodeJS.ProcessEnv
  /**
   * Its own process group, stopped as a group: for servers that fork a process per session
   * (proftpd), whose session processes would otherwise outlive it. The group's id is the PID of
   * the child we started, so nothing else is touched.
   */
  group?: boolean
}

/**
 * Starts `bin args` in the foreground as our child. setpriv execs it in place (same PID) with a
 * parent-death signal, so a benchmark that dies (Ctrl-C, a crash) takes its children with it
 * instead of leaving them on the ports. Stopped by its own PID only.
 */
export async function startDaemon(bin: string, args: readonly string[], opts: DaemonOptions = {}): Promise<Daemon> {
  const child = spawn(findBinary('setpriv'), ['--pdeathsig', 'KILL', '--', bin, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
    detached: opts.group === true,
  })
  let tail = ''
  let partial = ''
  const keep = (s: string): void => {
    tail = (tail + s).slice(-65536)
  }
  child.stdout?.on('data', (b: Buffer) => {
    const s = b.toString('utf8')
    keep(s)
    if (opts.onLine === undefined) return
    const lines = (partial + s).split('\n')
    partial = lines.pop() ?? ''
    for (const l of lines) if (l !== '') opts.onLine(l)
  })
  child.stderr?.on('data', (b: Buffer) => keep(b.toString('utf8')))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`cannot run ${bin}: ${e.message}`, { cause: e })))
    child.once('spawn', () => resolve(child.pid as number))
  })
  const signal = (sig: NodeJS.Signals): void => {
    try {
      if (opts.group === true) process.kill(-pid, sig)
      else child.kill(sig)
    } catch {
      // Already gone.
    }
  }
  let stopping: Promise<number | null> | undefined
  return {
    pid,
    child,
    output: () => tail,
    stop: (graceMs = 5000) => {
      stopping ??= (async () => {
        let code = child.exitCode
        if (child.exitCode === null && child.signalCode === null) {
          signal('SIGTERM')
          const timer = setTimeout(() => signal('SIGKILL'), graceMs)
          code = await exited
          clearTimeout(timer)
        }
        // Session processes of a group may outlive their master on SIGTERM.
        if (opts.group === true) signal('SIGKILL')
        return code
      })()
      return stopping
    },
  }
}

/** Waits until `ready()` is true; throws with the daemon's output after `timeoutMs` or if it exits. */
export async function waitFor(what: string, d: Daemon, ready: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (d.child.exitCode !== null || d.child.signalCode !== null) {
      throw new Error(`${what} exited (${d.child.exitCode ?? d.child.signalCode}): ${d.output().trim()}`)
    }
    if (await ready()) return
    await sleep(50)
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms: ${d.output().trim()}`)
}

/**
 * True when something on 127.0.0.1:port sends a final 220 line (RFC 959 4.2: a multi-line reply
 * ends on "220 "); false on refusal, silence for 2 s, or anything else.
 */
export function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    let text = ''
    const done = (ok: boolean): void => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(2000, () => done(false))
    socket.on('error', () => done(false))
    socket.on('close', () => done(false))
    socket.on('data', (b: Buffer) => {
      text += b.toString('latin1')
      if (/^220 /m.test(text)) done(true)
      else if (text.length > 4096) done(false)
    })
  })
}

/** True when a TCP connect to host:port succeeds (the connection is closed at once). */
export function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port })
    socket.setTimeout(2000, () => {
      socket.destroy()
      resolve(false)
    })
    socket.on('error', () => resolve(false))
    socket.on('connect', () => {
      socket.destroy()
      resolve(true)
    })
  })
}

// ---- the proxy under test, as a separate process ----

export interface ProxyProcess extends Daemon {
  readonly port: number
  /** http://127.0.0.1:N/metrics, or null when started with metrics off. */
  readonly metricsUrl: string | null
  /** Log lines at warn level or above (pino level >= 40), parsed. */
  readonly warnings: Array<Record<string, unknown>>
  /** Number of log lines written so far. */
  logLines(): number
}

export interface ProxyProcessOptions {
  listenPort: number
  upstreamPort: number
  pool: { min: number; max: number }
  /** /metrics on 127.0.0.1 port 0 (the kernel chooses; read back from the "metrics listening" log line), or off. */
  metrics: boolean
  logLevel?: string
  extraArgs?: readonly string[]
  /**
   * The built entry point to run; default dist/main.js of this checkout. A build of a clean
   * export of a commit measures that commit, not whatever src/ holds at the moment.
   */
  main?: string
  /** Options for node itself, before the entry point (e.g. --heapsnapshot-signal=SIGUSR2). */
  nodeArgs?: readonly string[]
}

/**
 * The built CLI (dist/main.js), the way it runs in production: its own process, so its RSS and
 * file descriptors are its own and not mixed with the clients'.
 */
export async function startProxyProcess(opts: ProxyProcessOptions): Promise<ProxyProcess> {
  const main = opts.main ?? PROXY_MAIN
  try {
    accessSync(main, constants.R_OK)
  } catch {
    throw new Error(`${main} is missing: run "npm run build" first`)
  }
  const warnings: Array<Record<string, unknown>> = []
  let lines = 0
  let listening = false
  let metricsUrl: string | null = null
  const args = [
    ...(opts.nodeArgs ?? []),
    main,
    '--listen', `127.0.0.1:${opts.listenPort}`,
    '--upstream', `127.0.0.1:${opts.upstreamPort}`,
    '--passive-ports', `${opts.pool.min}-${opts.pool.max}`,
    '--metrics-listen', opts.metrics ? '127.0.0.1:0' : 'off',
    '--log-level', opts.logLevel ?? 'info',
    ...(opts.extraArgs ?? []),
  ]
  const d = await startDaemon(process.execPath, args, {
    onLine: (line) => {
      lines++
      let rec: Record<string, unknown>
      try {
        rec = JSON.parse(line) as Record<string, unknown>
      } catch {
        return
      }
      if (rec['msg'] === 'proxy listening') listening = true
      if (typeof rec['metrics'] === 'string') metricsUrl = rec['metrics']
      if (typeof rec['level'] === 'number' && rec['level'] >= 40 && warnings.length < 1000) warnings.push(rec)
    },
  })
  try {
    await waitFor('ftp-pasv-proxy', d, () => listening && (!opts.metrics || metricsUrl !== null))
  } catch (err) {
    await d.stop()
    throw err
  }
  return { ...d, port: opts.listenPort, metricsUrl, warnings, logLines: () => lines }
}

/** One GET of /metrics, with Connection: close so that it leaves no socket open in the proxy. */
export function scrape(url: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve(body))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)))
    req.on('error', reject)
  })
}

/** Value of one sample in Prometheus text format; `labels` must match exactly as written. */
export function sample(text: string, name: string, labels = ''): number {
  const prefix = labels === '' ? `${name} ` : `${name}{${labels}} `
  for (const line of text.split('\n')) {
    if (line.startsWith(prefix)) return Number(line.slice(prefix.length).split(' ')[0])
  }
  throw new Error(`no sample ${prefix.trim()} in /metrics`)
}

export function fmtMiB(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`
}

/** The ports of a section that runs vsftpd and the proxy in front of it. */
export interface SectionPorts {
  vsftpd: number
  vsftpdPasv: { min: number; max: number }
  proxy: number
  proxyPool: { min: number; max: number }
}
