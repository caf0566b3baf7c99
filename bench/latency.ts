// Section 2 of `npm run bench`: how long from sending PASV until the data connection to the
// address the 227 names is established, directly to vsftpd and through the proxy, tries
// interleaved (direct, proxy, proxy, direct, ...) over one vsftpd.
//
// Through the proxy the 227 comes only after the proxy has connected to the server's passive
// port and leased a port of its own, so the figure holds the proxy's whole setup: PASV relayed,
// 227 read, the upstream connect, the pool lease, the rewritten 227, and the client's connect to
// the pool port. The clock starts when PASV is written and stops on the client socket's
// 'connect' (the kernel's handshake with the listener, before anyone accept()s).
//
// Each try then completes a real exchange, NLST of an empty directory (150, the server closes
// the data connection, 226), so that no lease or passive listener is left waiting for a
// transfer; a control session serves `PER_SESSION` tries and is then replaced, so that no
// session lives long. Both pools are wide enough for TIME_WAIT: vsftpd picks a random port of
// its range for each PASV.
import type net from 'node:net'
import { startVsftpd } from '../test/e2e/lib/servers.js'
import type { RawFtp } from '../test/fixtures/raw-ftp.js'
import { command, countReasons, final, login, openControl, pasvConnect, readToEnd, reasonOf } from './ftp.js'
import { percentile, startProxyProcess, type SectionPorts } from './lib.js'

const PER_SESSION = 100
const STEP_MS = 10_000
// Uncounted tries per side first: the proxy's JIT and both servers' first sessions.
const WARM_UP = 10

export interface LatencyOptions {
  tries: number
  ports: SectionPorts
  proxyMain: string
  /** The whole section stops here, whatever is left; each step has its own deadline besides. */
  deadlineMs: number
  cleanup: Array<() => Promise<unknown>>
  log: (s: string) => void
}

export interface LatencyStats {
  tries: number
  p50: number
  p99: number
  min: number
  max: number
  mean: number
}

export interface LatencyResult {
  lines: string[]
  direct: LatencyStats
  proxy: LatencyStats
  failures: number
  notes: string[]
}

/** One side's sessions, each replaced after PER_SESSION tries or a failure. */
class Side {
  readonly samples: number[] = []
  readonly failures: string[] = []
  #ftp: RawFtp | null = null
  #used = 0

  constructor(readonly name: string, readonly port: number) {}

  async #session(): Promise<RawFtp> {
    if (this.#ftp !== null && this.#used < PER_SESSION) return this.#ftp
    this.close()
    const ftp = await openControl(this.port, STEP_MS)
    try {
      await login(ftp, STEP_MS)
    } catch (err) {
      ftp.close()
      throw err
    }
    this.#ftp = ftp
    this.#used = 0
    return ftp
  }

  /** One try; its milliseconds are kept when `counted`. */
  async run(counted: boolean): Promise<void> {
    let data: net.Socket | null = null
    try {
      const ftp = await this.#session()
      this.#used++
      const t0 = process.hrtime.bigint()
      data = await pasvConnect(ftp, STEP_MS)
      const ms = Number(process.hrtime.bigint() - t0) / 1e6
      const listing = readToEnd(data, 'NLST data', STEP_MS, false)
      await command(ftp, 'NLST upload', [226], STEP_MS)
      await listing
      if (counted) this.samples.push(ms)
    } catch (err) {
      data?.destroy()
      if (counted) this.failures.push(reasonOf(err))
      this.close()
    }
  }

  close(): void {
    if (this.#ftp === null) return
    const ftp = this.#ftp
    this.#ftp = null
    ftp.socket.end('QUIT\r\n')
    // The server's 221 and close, or a reset a moment later: nothing waits for it.
    void final(ftp, 'QUIT', [221], 2000).catch(() => {}).finally(() => ftp.close())
  }

  stats(): LatencyStats {
    const s = this.samples
    return {
      tries: s.length,
      p50: percentile(s, 50),
      p99: percentile(s, 99),
      min: Math.min(...s),
      max: Math.max(...s),
      mean: s.reduce((a, b) => a + b, 0) / s.length,
    }
  }
}

export async function runLatency(o: LatencyOptions): Promise<LatencyResult> {
  const deadline = Date.now() + o.deadlineMs
  const notes: string[] = []
  // vsftpd advertises its own address (127.0.0.1): direct tries honour the 227 as they are.
  const vs = await startVsftpd({ port: o.ports.vsftpd, pasvMin: o.ports.vsftpdPasv.min, pasvMax: o.ports.vsftpdPasv.max })
  o.cleanup.push(() => vs.stop())
  const proxy = await startProxyProcess({ listenPort: o.ports.proxy, upstreamPort: o.ports.vsftpd, pool: o.ports.proxyPool, metrics: false, main: o.proxyMain })
  o.cleanup.push(() => proxy.stop(10_000))

  const direct = new Side('direct', o.ports.vsftpd)
  const viaProxy = new Side('proxy', o.ports.proxy)
  let i = 0
  for (; i < WARM_UP + o.tries && Date.now() < deadline; i++) {
    const counted = i >= WARM_UP
    // Alternate which side goes first, so that neither always follows the other's close.
    const order = i % 2 === 0 ? [direct, viaProxy] : [viaProxy, direct]
    for (const side of order) await side.run(counted)
    if (counted && (i - WARM_UP + 1) % 250 === 0) o.log(`latency: ${i - WARM_UP + 1} of ${o.tries} tries`)
  }
  direct.close()
  viaProxy.close()
  if (i < WARM_UP + o.tries) notes.push(`latency: stopped at the section's deadline (${o.deadlineMs / 1000} s) after ${Math.max(0, i - WARM_UP)} of ${o.tries} tries`)
  if (proxy.warnings.length > 0) notes.push(`latency: the proxy logged ${proxy.warnings.length} warning(s); first: ${JSON.stringify(proxy.warnings[0])}`)

  const d = direct.stats()
  const p = viaProxy.stats()
  const failures = direct.failures.length + viaProxy.failures.length
  const f = (x: number): string => x.toFixed(3)
  const lines = [
    `${o.tries} tries per side after ${WARM_UP} uncounted, interleaved; vsftpd advertising 127.0.0.1; a control session per ${PER_SESSION} tries; each try PASV, connect, NLST of an empty directory. Milliseconds from writing PASV to the data socket's connect.`,
    '',
    '| path | tries ok | p50 ms | p99 ms | min ms | max ms | mean ms | failures |',
    '|---|---|---|---|---|---|---|---|',
    `| direct (vsftpd) | ${d.tries} | ${f(d.p50)} | ${f(d.p99)} | ${f(d.min)} | ${f(d.max)} | ${f(d.mean)} | ${direct.failures.length} |`,
    `| ftp-pasv-proxy | ${p.tries} | ${f(p.p50)} | ${f(p.p99)} | ${f(p.min)} | ${f(p.max)} | ${f(p.mean)} | ${viaProxy.failures.length} |`,
    `| proxy minus direct | | ${f(p.p50 - d.p50)} | ${f(p.p99 - d.p99)} | | | ${f(p.mean - d.mean)} | |`,
  ]
  for (const side of [direct, viaProxy]) {
    for (const [reason, n] of countReasons(side.failures)) lines.push('', `Failed ${side.name} tries: ${n} x ${reason}`)
  }
  return { lines, direct: d, proxy: p, failures, notes }
}
