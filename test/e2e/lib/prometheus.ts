// The built proxy as a child process with its HTTP endpoints, promtool, and a real Prometheus
// (Debian `prometheus`), for the end-to-end tests of /metrics and /readyz. A missing binary is a
// thrown Error (findBinary), never a skip. Each child runs under `setpriv --pdeathsig KILL`, which
// execs in place (same PID), so a test process killed by tap's timeout takes it along; stop()
// kills it by that PID.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import http from 'node:http'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findBinary } from './bin.js'

const MAIN = fileURLToPath(new URL('../../../dist/main.js', import.meta.url))
const START_TIMEOUT_MS = 15_000
const STOP_TIMEOUT_MS = 5_000

export interface Child {
  readonly pid: number
  /** Everything it wrote to stdout and stderr so far. */
  output(): string
  /** Kills it by its PID (SIGTERM, then SIGKILL after 5 s) and waits for its exit. */
  stop(): Promise<void>
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {
    // Already gone.
  }
}

function launch(bin: string, args: readonly string[]): Promise<{ child: ChildProcess; handle: Child; exited: () => boolean }> {
  const child = spawn(findBinary('setpriv'), ['--pdeathsig', 'KILL', '--', bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let hasExited = false
  child.stdout?.on('data', (b: Buffer) => (out += b.toString('utf8')))
  child.stderr?.on('data', (b: Buffer) => (out += b.toString('utf8')))
  const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  void exit.then(() => {
    hasExited = true
  })
  return new Promise((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`cannot run ${bin}: ${e.message}`, { cause: e })))
    child.once('spawn', () => {
      const pid = child.pid as number
      let stopping: Promise<void> | undefined
      const stop = (): Promise<void> => {
        stopping ??= (async () => {
          if (hasExited) return
          kill(pid, 'SIGTERM')
          const timer = setTimeout(() => kill(pid, 'SIGKILL'), STOP_TIMEOUT_MS)
          await exit
          clearTimeout(timer)
        })()
        return stopping
      }
      resolve({ child, handle: { pid, output: () => out, stop }, exited: () => hasExited })
    })
  })
}

export interface ProxyChild extends Child {
  /** http://127.0.0.1:PORT, from the proxy's "metrics listening" log line. */
  readonly metricsBase: string
}

/**
 * Runs `node dist/main.js ARGS` (build first) and resolves once it logged "metrics listening";
 * ARGS must include --metrics-listen.
 */
export async function startProxyProcess(args: readonly string[]): Promise<ProxyChild> {
  const { handle, exited } = await launch(process.execPath, [MAIN, ...args])
  const deadline = Date.now() + START_TIMEOUT_MS
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    const m = /"metrics":"(http:\/\/[^"]+)\/metrics"/.exec(handle.output())
    if (m !== null) return { ...handle, metricsBase: m[1] as string }
    if (exited()) throw new Error(`the proxy exited: ${handle.output()}`)
    await sleep(50)
  }
  await handle.stop()
  throw new Error(`the proxy did not log "metrics listening" within ${START_TIMEOUT_MS} ms: ${handle.output()}`)
}

export interface HttpResult {
  status: number
  body: string
}

/** One GET on a fresh connection (no keep-alive agent that could outlive the test). */
export function httpGet(url: string, timeoutMs = 5000): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)))
    req.on('error', reject)
  })
}

export interface PromtoolResult {
  code: number | null
  /** stdout and stderr together: promtool writes its findings to stderr. */
  output: string
}

/** `promtool check metrics` with `text` on stdin. */
export function promtoolCheckMetrics(text: string, timeoutMs = 20_000): Promise<PromtoolResult> {
  const bin = findBinary('promtool')
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (b: Buffer) => (output += b.toString('utf8')))
    child.stderr.on('data', (b: Buffer) => (output += b.toString('utf8')))
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL')
    }, timeoutMs)
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(new Error(`cannot run ${bin}: ${e.message}`, { cause: e }))
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
    child.stdin.on('error', () => {})
    child.stdin.end(text)
  })
}

export interface PrometheusServer extends Child {
  /** http://127.0.0.1:PORT */
  readonly base: string
  /** Kills Prometheus by its PID and removes its config and storage dir. */
  stop(): Promise<void>
}

/**
 * A real Prometheus on 127.0.0.1:`port` that scrapes `target` (host:port, path /metrics) every
 * second as job `job`; resolves once its /-/ready answers 200.
 */
export async function startPrometheus(opts: { port: number; target: string; job: string }): Promise<PrometheusServer> {
  const bin = findBinary('prometheus')
  const dir = await mkdtemp(join(tmpdir(), 'e2e-prometheus-'))
  const config = join(dir, 'prometheus.yml')
  await writeFile(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      `  - job_name: ${JSON.stringify(opts.job)}`,
      '    static_configs:',
      `      - targets: [${JSON.stringify(opts.target)}]`,
      '',
    ].join('\n'),
  )
  let launched: Awaited<ReturnType<typeof launch>>
  try {
    launched = await launch(bin, [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${opts.port}`,
      '--log.level=warn',
    ])
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
  const { handle, exited } = launched
  const base = `http://127.0.0.1:${opts.port}`
  const stop = async (): Promise<void> => {
    await handle.stop()
    await rm(dir, { recursive: true, force: true })
  }
  const deadline = Date.now() + START_TIMEOUT_MS
  for (let i = 0; i < 300 && Date.now() < deadline; i++) {
    if (exited()) {
      await stop()
      throw new Error(`prometheus exited: ${handle.output()}`)
    }
    const ready = await httpGet(`${base}/-/ready`, 1000).catch(() => null)
    if (ready?.status === 200) return { ...handle, base, stop }
    await sleep(100)
  }
  const output = handle.output()
  await stop()
  throw new Error(`prometheus not ready on ${base} within ${START_TIMEOUT_MS} ms: ${output}`)
}

export interface Sample {
  labels: Record<string, string>
  value: number
}

/** An instant query through /api/v1/query; the vector's samples (empty when no series matches). */
export async function promQuery(base: string, query: string): Promise<Sample[]> {
  const res = await httpGet(`${base}/api/v1/query?query=${encodeURIComponent(query)}`)
  if (res.status !== 200) throw new Error(`query ${query}: HTTP ${res.status}: ${res.body}`)
  const body = JSON.parse(res.body) as {
    status: string
    data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> }
  }
  if (body.status !== 'success' || body.data?.resultType !== 'vector') throw new Error(`query ${query}: ${res.body}`)
  return body.data.result.map((r) => ({ labels: r.metric, value: Number(r.value[1]) }))
}
