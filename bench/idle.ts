// Section 4 of `npm run bench`: what an idle logged-in session costs the proxy, and whether it all
// comes back when the sessions close. N sessions through the proxy to a light server double
// (bench/ftp-double.ts, its own process), opened in waves, held idle, then closed; two rounds,
// so that a second round shows whether anything grows.
//
// Figures per round, from the proxy's process (never the bench's):
// - RSS (/proc/PID/status VmRSS) before, with the sessions open, after they closed;
// - open descriptors (/proc/PID/fd): two per session expected (client leg, server leg);
// - heapUsed after a full garbage collection. The proxy has no GC endpoint, and --expose-gc
//   gives nobody outside a way to call gc(); so the proxy runs with --inspect=127.0.0.1:0 and
//   the bench sends HeapProfiler.collectGarbage over the inspector (bench/inspector.ts), then
//   Runtime.getHeapUsage in the same session: V8's used heap, process.memoryUsage().heapUsed's
//   source. Its /metrics has the same figure (nodejs_heap_size_used_bytes), but the HTTP request
//   allocates between the collection and the reading: at rest, readings right after a collection
//   came out 110-450 KiB above the inspector's and varied by 350 KiB, the inspector's by a few
//   KiB. A heap snapshot (--heapsnapshot-signal) also collects first, but writing one takes tens
//   of MiB of RSS that stay with the process and would count as the sessions'.
// With --heap-snapshots DIR the proxy also writes a heap snapshot (SIGUSR2) with the sessions open
// and after they closed, each after that moment's readings, for issue 12's "where does an idle
// session's memory go"; the RSS read after the first one includes what the snapshot took.
import { readdir, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { RawFtp } from '../test/fixtures/raw-ftp.js'
import { countReasons, login, openControl, reasonOf } from './ftp.js'
import { inspectorCalls, inspectorUrl } from './inspector.js'
import { greets, MiB, openFds, procMemory, sample, scrape, sleep, startDaemon, startProxyProcess, waitFor, type ProxyProcess } from './lib.js'

const WAVE = 500
const STEP_MS = 30_000
const ROUNDS = 2
const DOUBLE = fileURLToPath(new URL('./ftp-double.ts', import.meta.url))

export interface IdleOptions {
  sessions: number
  ports: { double: number; proxy: number; proxyPool: { min: number; max: number } }
  proxyMain: string
  /** Heap snapshots of the proxy go here, named by round and moment; null: none taken. */
  heapSnapshots: string | null
  /** Pause before each reading, so that timers and sockets in flight settle. */
  settleMs: number
  /** Opening stops here, whatever is left. */
  deadlineMs: number
  cleanup: Array<() => Promise<unknown>>
  log: (s: string) => void
}

/** The proxy at one moment: descriptors and RSS as read (after the settle pause), then a full collection, then RSS and heap. */
export interface Moment {
  rss: number
  rssAfterGc: number
  heap: number
  fds: number
  /** ftp_proxy_sessions_active. */
  active: number
}

export interface IdleRound {
  opened: number
  failures: string[]
  openSeconds: number
  /** The proxy before the round (at rest, or the last round's `closed`), with the sessions open, after they closed. */
  before: Moment
  open: Moment
  closed: Moment
}

export interface IdleResult {
  lines: string[]
  rounds: IdleRound[]
  /** Before the first round, after the warm-up: the proxy at rest. */
  baseline: Moment
  notes: string[]
}

export async function runIdle(o: IdleOptions): Promise<IdleResult> {
  const notes: string[] = []
  const deadline = Date.now() + o.deadlineMs
  // The bench's own loader (tap's TypeScript import hook) runs the double too; nothing else of
  // its node options (a --cpu-prof of the bench is not the double's).
  const loader: string[] = []
  process.execArgv.forEach((a, i, all) => {
    if (/^--(import|loader|experimental-loader)=/.test(a)) loader.push(a)
    else if (/^--(import|loader|experimental-loader)$/.test(a) && all[i + 1] !== undefined) loader.push(a, all[i + 1]!)
  })
  const double = await startDaemon(process.execPath, [...loader, DOUBLE, String(o.ports.double)])
  o.cleanup.push(() => double.stop())
  await waitFor('ftp double', double, () => greets(o.ports.double))

  const n = o.sessions
  const proxy = await startProxyProcess({
    listenPort: o.ports.proxy,
    upstreamPort: o.ports.double,
    pool: o.ports.proxyPool,
    metrics: true,
    main: o.proxyMain,
    nodeArgs: [
      '--inspect=127.0.0.1:0',
      ...(o.heapSnapshots === null ? [] : ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${o.heapSnapshots}`]),
    ],
    extraArgs: ['--max-sessions', String(n + 100), '--max-sessions-per-client', String(n + 100)],
  })
  o.cleanup.push(() => proxy.stop(10_000))
  await waitFor('the proxy\'s inspector', proxy, () => inspectorUrl(proxy.output()) !== null, 5000)
  const ws = inspectorUrl(proxy.output())!

  const metric = async (name: string): Promise<number> => sample(await scrape(proxy.metricsUrl!, 60_000), name)
  // Two collections, each followed by a reading of V8's used heap; the lower reading counts
  // (what a session leaks stays through both; the inspector's own work between them does not).
  const heapAfterGc = async (): Promise<number> => {
    const gc = { method: 'HeapProfiler.collectGarbage' }
    const usage = { method: 'Runtime.getHeapUsage' }
    const results = await inspectorCalls(ws, [gc, usage, gc, usage])
    const used = results.filter((_, i) => i % 2 === 1).map((r) => (r as { usedSize: number }).usedSize)
    return Math.min(...used)
  }
  const snapshot = async (label: string): Promise<void> => {
    if (o.heapSnapshots === null) return
    const dir = o.heapSnapshots
    const before = new Set(await readdir(dir))
    process.kill(proxy.pid, 'SIGUSR2')
    const until = Date.now() + 120_000
    let file: string | undefined
    while (file === undefined) {
      if (Date.now() > until) throw new Error(`idle: no heap snapshot from the proxy within 120 s of SIGUSR2 (${label})`)
      await sleep(50)
      file = (await readdir(dir)).find((f) => !before.has(f) && f.endsWith('.heapsnapshot'))
    }
    // The snapshot is written on the proxy's main thread: /metrics answers once it is complete.
    await metric('ftp_proxy_sessions_active')
    await rename(join(dir, file), join(dir, `idle-${n}-${label}.heapsnapshot`))
  }

  const moment = async (): Promise<Moment> => {
    await sleep(o.settleMs)
    // Descriptors first: the bench's own /metrics and inspector connections are not the sessions'.
    const fds = openFds(proxy.pid)
    const rss = procMemory(proxy.pid).rss
    const active = await metric('ftp_proxy_sessions_active')
    const heap = await heapAfterGc()
    return { rss, rssAfterGc: procMemory(proxy.pid).rss, heap, fds, active }
  }

  // A warm-up round, not counted: the baseline is a proxy that has compiled and run the session
  // code once (V8's code and type feedback of a first session would otherwise count as growth).
  const warm = await openSessions(o.ports.proxy, Math.min(WAVE, n), deadline, () => {})
  await closeAll(warm.controls)
  const baseline = await moment()
  const rounds: IdleRound[] = []
  let before = baseline
  for (let r = 1; r <= ROUNDS; r++) {
    const { controls, failures, seconds } = await openSessions(o.ports.proxy, n, deadline, o.log)
    if (controls.length + failures.length < n) notes.push(`idle round ${r}: stopped opening at the section's deadline (${o.deadlineMs / 1000} s) after ${controls.length + failures.length} of ${n}`)
    o.log(`idle round ${r}: ${controls.length} sessions open after ${seconds.toFixed(1)} s, ${failures.length} failed`)
    const open = await moment()
    await snapshot(`round${r}-open`)
    await closeAll(controls)
    await settle(proxy, before.fds)
    const closed = await moment()
    await snapshot(`round${r}-closed`)
    rounds.push({ opened: controls.length, failures, openSeconds: seconds, before, open, closed })
    before = closed
  }
  if (proxy.warnings.length > 0) notes.push(`idle: the proxy logged ${proxy.warnings.length} warning(s); first: ${JSON.stringify(proxy.warnings[0])}`)
  if (o.heapSnapshots !== null) notes.push(`idle: heap snapshots of the proxy in ${o.heapSnapshots} (idle-${n}-round*-open/closed.heapsnapshot); RSS read after the first includes what taking it cost`)
  return { lines: report(n, baseline, rounds), rounds, baseline, notes }
}

/** Opens `n` logged-in sessions in waves of WAVE; stops at `deadline`. */
async function openSessions(port: number, n: number, deadline: number, log: (s: string) => void): Promise<{ controls: RawFtp[]; failures: string[]; seconds: number }> {
  const started = Date.now()
  const controls: RawFtp[] = []
  const failures: string[] = []
  for (let first = 0; first < n && Date.now() < deadline; first += WAVE) {
    await Promise.all(Array.from({ length: Math.min(WAVE, n - first) }, async () => {
      let ftp: RawFtp | null = null
      try {
        ftp = await openControl(port, STEP_MS)
        await login(ftp, STEP_MS)
        controls.push(ftp)
      } catch (err) {
        ftp?.close()
        failures.push(reasonOf(err))
      }
    }))
    if ((first / WAVE) % 4 === 3) log(`idle: ${controls.length} open`)
  }
  return { controls, failures, seconds: (Date.now() - started) / 1000 }
}

/** Each client closes its side (FIN); the proxy closes both legs. Resolves when every socket has closed, or after 60 s (then destroyed). */
async function closeAll(controls: RawFtp[]): Promise<void> {
  await Promise.all(controls.map((ftp) => new Promise<void>((resolve) => {
    if (ftp.socket.destroyed) {
      resolve()
      return
    }
    const timer = setTimeout(() => {
      ftp.close()
      resolve()
    }, 60_000)
    ftp.socket.once('close', () => {
      clearTimeout(timer)
      resolve()
    })
    ftp.socket.end()
  })))
}

/** Waits (at most 30 s) until the proxy holds no more descriptors than before the round and no session. */
async function settle(proxy: ProxyProcess, fds: number): Promise<void> {
  const until = Date.now() + 30_000
  while (Date.now() < until) {
    if (openFds(proxy.pid) <= fds && sample(await scrape(proxy.metricsUrl!), 'ftp_proxy_sessions_active') === 0) return
    await sleep(200)
  }
}

function report(n: number, baseline: Moment, rounds: IdleRound[]): string[] {
  const kib = (b: number): string => (b / 1024).toFixed(1)
  const mib = (b: number): string => (b / MiB).toFixed(1)
  const pct = (x: number, of: number): string => `${x >= of ? '+' : ''}${(((x - of) / of) * 100).toFixed(1)}%`
  const row = (label: string, m: Moment): string => `| ${label} | ${m.active} | ${mib(m.rss)} | ${mib(m.rssAfterGc)} | ${m.fds} | ${mib(m.heap)} | ${pct(m.heap, baseline.heap)} |`
  const lines = [
    `${n} sessions per round through ftp-pasv-proxy to a light server double (bench/ftp-double.ts: greets, takes USER/PASS, holds the session); opened in waves of ${WAVE}, each logged in, held idle, then closed by the client (FIN); ${ROUNDS} rounds in one proxy process, after a warm-up of ${Math.min(WAVE, n)} sessions opened and closed.`,
    'At each moment, after a pause: open descriptors (/proc/PID/fd) and RSS as read; then, over the proxy\'s inspector (it runs with --inspect=127.0.0.1:0), a full collection (HeapProfiler.collectGarbage) and V8\'s used heap (Runtime.getHeapUsage, what process.memoryUsage().heapUsed reports), twice, the lower counted; then RSS again.',
    '',
    '| moment | sessions (proxy\'s gauge) | RSS MiB | RSS after GC MiB | descriptors | heapUsed after GC MiB | heap vs at rest |',
    '|---|---|---|---|---|---|---|',
    row('at rest, after the warm-up', baseline),
  ]
  rounds.forEach((r, i) => {
    lines.push(row(`round ${i + 1}, ${r.opened} open`, r.open), row(`round ${i + 1}, closed`, r.closed))
  })
  lines.push(
    '',
    'Per open session: what the open moment holds over the moment before the round (after its collection), divided by the sessions open. "RSS as read" is what an operator would see; "after GC" leaves out garbage of the logins.',
    '',
    '| round | opened | failed | s to open | RSS per session KiB (as read / after GC) | descriptors per session | heapUsed per session KiB |',
    '|---|---|---|---|---|---|---|',
  )
  rounds.forEach((r, i) => {
    const per = (a: number, b: number): number => (r.opened === 0 ? Number.NaN : (a - b) / r.opened)
    lines.push(`| ${i + 1} | ${r.opened} | ${r.failures.length} | ${r.openSeconds.toFixed(1)} | ${kib(per(r.open.rss, r.before.rssAfterGc))} / ${kib(per(r.open.rssAfterGc, r.before.rssAfterGc))} | ${per(r.open.fds, r.before.fds).toFixed(2)} | ${kib(per(r.open.heap, r.before.heap))} |`)
  })
  rounds.forEach((r, i) => {
    for (const [reason, count] of countReasons(r.failures)) lines.push('', `Round ${i + 1} failures: ${count} x ${reason}`)
  })
  return lines
}
