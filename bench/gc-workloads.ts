// The workloads behind the proxy's young-generation cap: what V8's young generation costs the proxy
// in CPU and memory when sessions make a lot of short-lived garbage. src/young-generation.ts caps
// the new space at 8 MiB (4 MiB semi-spaces) unless the operator sizes it with a node flag; too
// small a young generation costs CPU on reply-heavy sessions (more scavenges, more copying) and,
// beside many idle sessions, promotes garbage into the old generation (old space and RSS grow).
// These are the workloads where that shows; run them with the defaults and with the node flags
// to compare (e.g. --node-arg=--max-semi-space-size=16, V8's own cap, or =1, the start).
//
// A fake FTP upstream and the client sessions run in this process; the built proxy runs as a child,
// pinned to CPU 1 with taskset (when taskset is there and CPU 1 may be used; else unpinned, and the
// JSON says `taskset: false`), with only PATH in its environment (no NODE_OPTIONS) and a probe
// loaded with --import=data: that counts its GCs and samples its heap spaces. Modes:
//   help   SESSIONS sessions pipeline HELP in batches of BATCH; the upstream answers each with a
//          multi-line 214 reply of HELP_LINES lines (each reply a fresh string in the proxy)
//   noop   the same with NOOP (one-line 200 replies), optionally beside IDLE sessions held open
//          for the whole run (their objects sit in the old generation)
//   churn  SESSIONS workers, each connect, USER, QUIT, again, until WORK sessions are done
// Each run ends once WORK replies (churn: sessions) are done, and prints one JSON line: the
// proxy's CPU seconds over the run and per reply (cpuPerUnit_us), replies/s, its RSS (MiB) at the
// start, peak (sampled every 200 ms), end and VmHWM, and the probe's GC counts and times (minor,
// major) and peak heap sizes (MiB, sampled every 100 ms; newS is the new space, old the old space).
//
//   npm run build
//   node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/gc-workloads.ts MODE
//       [--node-arg=FLAG]... [--sessions 50] [--batch 60] [--work 400000] [--help-lines 400]
//       [--idle 0] [--runs 1] [--proxy-main dist/main.js]
//
// --node-arg takes its value after `=` (parseArgs refuses a separate value that starts with `-`).
// Every run has a deadline of 120 s: past it the proxy is killed (by its PID) and the bench exits
// 1; also 1 when the proxy exits during a run. Many idle sessions need descriptors: `ulimit -n`.
//
// Ports, all on 127.0.0.1: upstream 24340, proxy 24341, passive pool 24350-24399.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import net from 'node:net'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { loadAvg, MiB, PROXY_MAIN, procCpuSeconds, procMemory, runIfMain, sleep } from './lib.js'

const MODES = ['help', 'noop', 'churn'] as const
type Mode = (typeof MODES)[number]

const UPSTREAM_PORT = 24340
const PROXY_PORT = 24341
const POOL = '24350-24399'
const DEADLINE_MS = 120_000

const HELP = `bench/gc-workloads.ts MODE [OPTIONS]: the proxy's CPU, RSS and GCs under garbage-heavy sessions.
  MODE                  help (pipelined HELP, multi-line replies), noop (pipelined NOOP), churn (connect, USER, QUIT)
  --node-arg=FLAG       a flag for the proxy's node, repeatable (e.g. --node-arg=--max-semi-space-size=16; default none)
  --sessions N          concurrent client sessions (churn: workers) (default 50)
  --batch N             commands pipelined per batch (default 60)
  --work N              replies to complete (churn: sessions) (default 400000)
  --help-lines N        lines of the upstream's 214 reply to HELP (default 400)
  --idle N              sessions held open and idle during the run (default 0)
  --runs N              runs, one JSON line each (default 1)
  --proxy-main FILE     the proxy's built entry point (default dist/main.js)
`

interface Options {
  mode: Mode
  nodeArgs: readonly string[]
  sessions: number
  batch: number
  work: number
  helpLines: number
  idle: number
  runs: number
  proxyMain: string
}

function integer(name: string, text: string, min: number, max: number): number {
  const v = Number(text)
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`--${name}: "${text}" is not an integer from ${min} to ${max}`)
  return v
}

function parseOptions(argv: string[]): Options | null {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'node-arg': { type: 'string', multiple: true, default: [] },
      sessions: { type: 'string', default: '50' },
      batch: { type: 'string', default: '60' },
      work: { type: 'string', default: '400000' },
      'help-lines': { type: 'string', default: '400' },
      idle: { type: 'string', default: '0' },
      runs: { type: 'string', default: '1' },
      'proxy-main': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(HELP)
    return null
  }
  const mode = MODES.find((m) => m === positionals[0])
  if (mode === undefined || positionals.length !== 1) throw new Error(`one MODE expected, ${MODES.join(', ')}; got "${positionals.join(' ')}" (--help)`)
  const proxyMain = resolve(values['proxy-main'] ?? PROXY_MAIN)
  try {
    accessSync(proxyMain, constants.R_OK)
  } catch {
    throw new Error(`${proxyMain} is missing: run "npm run build" first`)
  }
  return {
    mode,
    nodeArgs: values['node-arg'],
    sessions: integer('sessions', values.sessions, 1, 10_000),
    batch: integer('batch', values.batch, 1, 100_000),
    work: integer('work', values.work, 1, 1e9),
    helpLines: integer('help-lines', values['help-lines'], 0, 100_000),
    idle: integer('idle', values.idle, 0, 100_000),
    runs: integer('runs', values.runs, 1, 1000),
    proxyMain,
  }
}

/** Whether `taskset -c 1` runs a program here: taskset installed and CPU 1 in this process's affinity. */
function tasksetWorks(): boolean {
  const r = spawnSync('taskset', ['-c', '1', process.execPath, '--version'], { stdio: 'ignore', timeout: 10_000 })
  return r.status === 0
}

// Runs in the proxy (--import=data:, before its entry point): counts GCs by kind (perf_hooks 'gc'
// entries; 1 minor, 2 and 4 major, anything else other) with their total ms, samples the peak of
// process.memoryUsage() and of the old and new spaces every 100 ms, and writes them all on SIGUSR2.
const PROBE = `import { PerformanceObserver } from 'node:perf_hooks'
import v8 from 'node:v8'
const c = { minor: 0, major: 0, minorMs: 0, majorMs: 0, other: 0 }
new PerformanceObserver((l) => { for (const e of l.getEntries()) { const k = e.detail.kind; if (k === 1) { c.minor++; c.minorMs += e.duration } else if (k === 2 || k === 4) { c.major++; c.majorMs += e.duration } else c.other++ } }).observe({ entryTypes: ['gc'] })
const mx = { heapTotal: 0, heapUsed: 0, external: 0, old: 0, newS: 0 }
setInterval(() => { const m = process.memoryUsage(); mx.heapTotal = Math.max(mx.heapTotal, m.heapTotal >> 20); mx.heapUsed = Math.max(mx.heapUsed, m.heapUsed >> 20); mx.external = Math.max(mx.external, m.external >> 20); for (const sp of v8.getHeapSpaceStatistics()) { if (sp.space_name === 'old_space') mx.old = Math.max(mx.old, sp.space_size >> 20); if (sp.space_name === 'new_space') mx.newS = Math.max(mx.newS, sp.space_size >> 20) } }, 100).unref()
process.on('SIGUSR2', () => process.stderr.write('GCSTATS ' + JSON.stringify({ ...c, peakMiB: mx }) + '\\n'))`

/** The fake upstream: greets, answers HELP with `helpReply`, QUIT with 221 and a close, anything else 200. */
async function startUpstream(helpLines: number): Promise<{ close(): void }> {
  let text = '214-help follows\r\n'
  for (let i = 0; i < helpLines; i++) text += ` line ${i} ${'x'.repeat(60)}\r\n`
  const helpReply = Buffer.from(`${text}214 end\r\n`)
  const ok = Buffer.from('200 ok\r\n')
  const bye = Buffer.from('221 bye\r\n')
  const sockets = new Set<net.Socket>()
  const server = net.createServer((s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.setNoDelay(true)
    s.write('220 fake\r\n')
    let rest = ''
    s.on('data', (d: Buffer) => {
      const lines = (rest + d.toString('latin1')).split('\r\n')
      rest = lines.pop() ?? ''
      const out: Buffer[] = []
      let quit = false
      for (const l of lines) {
        if (l.startsWith('HELP')) out.push(helpReply)
        else if (l.startsWith('QUIT')) {
          out.push(bye)
          quit = true
          break
        } else out.push(ok)
      }
      if (s.destroyed) return
      if (quit) s.end(Buffer.concat(out))
      else s.write(Buffer.concat(out))
    })
    s.on('error', () => {})
  })
  server.maxConnections = 100_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(UPSTREAM_PORT, '127.0.0.1', resolve)
  })
  return {
    close: () => {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1')
    c.on('connect', () => {
      c.destroy()
      resolve(true)
    })
    c.on('error', () => resolve(false))
  })
}

const round = (v: number, digits: number): number => Number(v.toFixed(digits))

async function runOnce(o: Options, run: number, taskset: boolean): Promise<Record<string, unknown>> {
  let done = 0
  let proxy: ChildProcess | null = null
  let stopping = false
  const abort = (why: string): never => {
    if (proxy?.pid !== undefined && proxy.exitCode === null && proxy.signalCode === null) {
      try {
        process.kill(proxy.pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    process.stderr.write(`gc-workloads: run ${run}: ${why} (${done} of ${o.work} done)\n`)
    process.exit(1)
  }
  const deadline = setTimeout(() => abort(`not finished within ${DEADLINE_MS / 1000} s; proxy (pid ${proxy?.pid ?? '?'}) killed`), DEADLINE_MS)

  const upstream = await startUpstream(o.helpLines)
  const nodeCmd = [
    ...o.nodeArgs,
    `--import=data:text/javascript,${encodeURIComponent(PROBE)}`,
    o.proxyMain,
    '--listen', `127.0.0.1:${PROXY_PORT}`,
    '--upstream', `127.0.0.1:${UPSTREAM_PORT}`,
    '--metrics-listen', 'off',
    '--passive-ports', POOL,
    '--log-level', 'warn',
    '--idle-timeout', '600s',
    '--max-sessions', '5000',
    '--max-sessions-per-client', '5000',
  ]
  // taskset execs node: the child's PID is the proxy's, its /proc figures the proxy's.
  const child = spawn(taskset ? 'taskset' : process.execPath, taskset ? ['-c', '1', process.execPath, ...nodeCmd] : nodeCmd, { env: { PATH: process.env['PATH'] }, stdio: ['ignore', 'ignore', 'pipe'] })
  proxy = child
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (d: string) => {
    if (stderr.length < MiB) stderr += d
  })
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  child.on('error', (err) => abort(`proxy did not start: ${err.message}`))
  child.on('exit', (code, signal) => {
    if (!stopping) abort(`proxy exited during the run (code ${code}, signal ${signal}): ${stderr.slice(0, 2000)}`)
  })
  const pid = child.pid
  if (pid === undefined) return abort('proxy has no PID')

  for (let i = 0; !(await canConnect(PROXY_PORT)); i++) {
    if (i > 100) abort(`proxy not listening on ${PROXY_PORT} after 10 s: ${stderr.slice(0, 2000)}`)
    await sleep(100)
  }
  await sleep(300)

  // Idle sessions, open for the whole run: their objects live in the old generation.
  const idle: net.Socket[] = []
  for (let i = 0; i < o.idle; i++) {
    await new Promise<void>((resolve) => {
      const c = net.connect(PROXY_PORT, '127.0.0.1')
      c.once('data', () => resolve())
      c.on('error', () => resolve())
      idle.push(c)
    })
  }
  await sleep(500)

  const rss = (): number => procMemory(pid).rss / MiB
  const cpu0 = procCpuSeconds(pid)
  const t0 = performance.now()
  const rss0 = rss()
  let rssPeak = rss0
  const sampler = setInterval(() => {
    try {
      rssPeak = Math.max(rssPeak, rss())
    } catch {
      // the proxy is gone: its exit handler reports it
    }
  }, 200)
  const batchBuf = Buffer.from((o.mode === 'help' ? 'HELP\r\n' : 'NOOP\r\n').repeat(o.batch))

  // One pipelining session: a batch, then the next once all its replies (final lines) are in.
  const session = (): Promise<void> =>
    new Promise((resolve) => {
      const c = net.connect(PROXY_PORT, '127.0.0.1')
      c.setNoDelay(true)
      let greeted = false
      let owed = 0
      let tail = ''
      const next = (): void => {
        if (done >= o.work) {
          c.end('QUIT\r\n')
          return
        }
        owed = o.batch
        c.write(batchBuf)
      }
      c.on('data', (d: Buffer) => {
        const text = tail + d.toString('latin1')
        const cut = text.lastIndexOf('\n')
        tail = text.slice(cut + 1)
        const n = text.slice(0, cut + 1).match(/^\d\d\d /gm)?.length ?? 0
        if (!greeted) {
          greeted = true
          next()
          return
        }
        if (n === 0) return
        owed -= n
        done += n
        if (owed <= 0) next()
      })
      c.on('error', () => {})
      c.on('close', () => resolve())
    })

  const churnOne = (): Promise<void> =>
    new Promise((resolve) => {
      const c = net.connect(PROXY_PORT, '127.0.0.1')
      let greeted = false
      c.on('data', () => {
        if (greeted) return
        greeted = true
        c.write('USER anonymous\r\nQUIT\r\n')
      })
      c.on('error', () => {})
      c.on('close', () => {
        done++
        resolve()
      })
    })

  if (o.mode === 'churn') {
    const worker = async (): Promise<void> => {
      while (done < o.work) await churnOne()
    }
    await Promise.all(Array.from({ length: o.sessions }, worker))
  } else {
    await Promise.all(Array.from({ length: o.sessions }, session))
  }
  const wall = (performance.now() - t0) / 1000
  const cpu = procCpuSeconds(pid) - cpu0
  clearInterval(sampler)
  const { rss: rssEnd, hwm } = procMemory(pid)

  // The probe's figures: asked for with SIGUSR2, read from the proxy's stderr (2 s at most).
  child.kill('SIGUSR2')
  for (let i = 0; i < 20 && !stderr.includes('GCSTATS '); i++) await sleep(100)
  const gc = /GCSTATS (.*)/.exec(stderr)
  stopping = true
  for (const c of idle) c.destroy()
  child.kill('SIGTERM')
  const killer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(killer)
  upstream.close()
  clearTimeout(deadline)
  return {
    mode: o.mode,
    run,
    nodeArgs: o.nodeArgs,
    taskset,
    sessions: o.sessions,
    batch: o.batch,
    ...(o.mode === 'help' ? { helpLines: o.helpLines } : {}),
    idle: o.idle,
    work: done,
    wall: round(wall, 2),
    cpu: round(cpu, 2),
    cpuPerUnit_us: round((cpu / done) * 1e6, 2),
    perSec: Math.round(done / wall),
    rss0: round(rss0, 1),
    rssPeak: round(rssPeak, 1),
    rssEnd: round(rssEnd / MiB, 1),
    hwm: round(hwm / MiB, 1),
    gc: gc === null ? null : (JSON.parse(gc[1]!) as unknown),
    errs: stderr.split('\n').filter((l) => l !== '' && !l.startsWith('GCSTATS')).slice(0, 2),
    load: loadAvg(),
  }
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2))
  if (o === null) return 0
  const taskset = tasksetWorks()
  if (!taskset) process.stderr.write('gc-workloads: taskset -c 1 does not run here (no taskset, or no CPU 1): the proxy runs unpinned\n')
  for (let run = 1; run <= o.runs; run++) {
    process.stdout.write(`${JSON.stringify(await runOnce(o, run, taskset))}\n`)
    if (run < o.runs) await sleep(500)
  }
  return 0
}

runIfMain(import.meta.url, main)
