// Command line: `proxy` (the default), `demo`, `diagnose`; signals and exit codes. Loaded by
// main.ts once the young generation is capped.
// Exit codes: 0 stopped by a signal (or done), 1 an address cannot be listened on (one line on
// stderr naming the setting and the address) or an unexpected failure (a stack trace), 2 bad
// settings or usage.

import { pino, type Logger } from 'pino'
import type { Endpoint } from './config-types.js'
import { ephemeralOverlap, formatEndpoint, helpText, loadConfig, readEphemeralRange } from './config.js'
import { ConfigError } from './errors.js'
import { startObserveServer, type ObserveServer } from './observe/http.js'
import { statusPageOn } from './observe/status.js'
import { ProxyServer } from './proxy/server.js'
import { VERSION } from './version.js'

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv
  if (first !== 'diagnose' && (first === '--help' || first === '-h' || argv.includes('--help') || argv.includes('-h'))) {
    process.stdout.write(helpText())
    return 0
  }
  if (first === '--version') {
    process.stdout.write(`${VERSION}\n`)
    return 0
  }
  if (first === 'diagnose') {
    const { runDiagnose } = await import('./diagnose/run.js')
    return runDiagnose(rest, { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) }, process.env)
  }
  if (first === 'demo') {
    const { runDemo } = await import('./demo/run.js')
    return runDemo(rest)
  }
  return runProxy(first === 'proxy' ? rest : argv)
}

async function runProxy(argv: string[]): Promise<number> {
  let config
  try {
    config = loadConfig(argv, process.env)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ftp-pasv-proxy: ${err.message}\nRun ftp-pasv-proxy --help for the settings.\n`)
      return 2
    }
    throw err
  }
  const logger = pino({ level: config.logLevel, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime })
  warnEphemeralOverlap(config.passivePorts, logger)
  let proxy: ProxyServer
  try {
    proxy = new ProxyServer({ config, logger })
  } catch (err) {
    // A certificate file that cannot be read or used: the same clear stop as a bad flag.
    if (err instanceof ConfigError) {
      process.stderr.write(`ftp-pasv-proxy: ${err.message}\n`)
      return 2
    }
    throw err
  }
  let observe: ObserveServer | null = null
  // The metrics address is bound first: `proxy listening` then means every address is bound,
  // and a metrics address that cannot be had stops the start before any client is served.
  let binding: { setting: 'listen' | 'metricsListen'; endpoints: readonly Endpoint[] } = { setting: 'listen', endpoints: config.listen }
  try {
    if (config.metricsListen !== null) {
      binding = { setting: 'metricsListen', endpoints: [config.metricsListen] }
      const running = proxy
      observe = await startObserveServer(
        config.metricsListen,
        proxy.metrics.registry,
        proxy.readiness,
        (err) => logger.error({ err }, 'metrics listener error'),
        { board: proxy.status, enabled: () => statusPageOn(running.config) },
      )
      const base = `http://${formatEndpoint(observe.address)}`
      logger.info({ metrics: `${base}/metrics`, ...(statusPageOn(config) ? { status: `${base}/` } : {}) }, 'metrics listening')
    }
    binding = { setting: 'listen', endpoints: config.listen }
    await proxy.listen()
  } catch (err) {
    await observe?.close()
    await proxy.close(0)
    const failure = listenFailure(binding.setting, binding.endpoints, err)
    // Anything but the system refusing an address is a bug: its stack trace, from main's catch.
    if (failure === null) throw err
    // Named for an operator, without a stack trace: the setting, the address, the reason.
    logger.fatal({ setting: binding.setting, address: failure.address, code: failure.code }, 'cannot listen')
    process.stderr.write(`ftp-pasv-proxy: ${failure.line}\n`)
    return 1
  }
  return new Promise<number>((resolve) => {
    let stopping = false
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        // A second signal: close what is left now.
        logger.info({ signal }, 'second signal: closing every session now')
        proxy.endGraceNow()
        return
      }
      stopping = true
      logger.info({ signal, graceSeconds: proxy.config.shutdownGraceMs / 1000 }, 'shutting down: no new sessions, running transfers may finish')
      void proxy.close(proxy.config.shutdownGraceMs).then(async (cut) => {
        await observe?.close()
        logger.info({ sessionsCut: cut }, 'proxy stopped')
        resolve(0)
      })
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
    // SIGHUP: re-read flags, environment and the config file; the running config stays when
    // the new one is invalid. Running sessions and transfers are untouched.
    process.on('SIGHUP', () => {
      let result: { ok: true } | { ok: false; reason: string }
      try {
        result = proxy.reload(loadConfig(argv, process.env))
      } catch (err) {
        result = { ok: false, reason: err instanceof Error ? err.message : String(err) }
      }
      proxy.metrics.configReloads.inc({ result: result.ok ? 'ok' : 'rejected' })
      if (result.ok) logger.info({ config: proxy.config.configFile }, 'config reloaded')
      else logger.error({ config: proxy.config.configFile, error: result.reason }, 'config reload rejected; the running config stays')
    })
  })
}

/**
 * The one line that says why `setting` cannot listen, when the system refused an address
 * (Node's listen errors carry syscall, code, address and port); null for any other error.
 */
function listenFailure(
  setting: 'listen' | 'metricsListen',
  endpoints: readonly Endpoint[],
  err: unknown,
): { line: string; address: string; code: string } | null {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number }
  if (!(err instanceof Error) || typeof e.code !== 'string' || (e.syscall !== 'listen' && e.syscall !== 'bind')) return null
  // The address the system refused, as the error names it; else the setting's first one.
  const refused = e.address !== undefined && e.port !== undefined ? { host: e.address, port: e.port } : endpoints[0]
  const address = refused === undefined ? '(none)' : formatEndpoint(refused)
  const port = refused?.port ?? 0
  const why: Record<string, string> = {
    EADDRINUSE: 'is already in use (EADDRINUSE)',
    EADDRNOTAVAIL: 'is not an address of this host (EADDRNOTAVAIL)',
    EACCES: port > 0 && port < 1024 ? 'is not permitted (EACCES): a port below 1024 needs root or CAP_NET_BIND_SERVICE' : 'is not permitted (EACCES)',
  }
  return { line: `${setting}: ${address} ${why[e.code] ?? `cannot be listened on (${e.code})`}`, address, code: e.code }
}

function warnEphemeralOverlap(pool: { min: number; max: number }, logger: Logger): void {
  const text = readEphemeralRange()
  if (text === null) return
  const overlap = ephemeralOverlap(pool, text)
  if (overlap !== null) {
    logger.warn(
      { passivePorts: `${pool.min}-${pool.max}`, ephemeral: text.trim().split(/\s+/).join('-'), overlap: `${overlap.min}-${overlap.max}` },
      'the passive pool overlaps the kernel ephemeral port range: outgoing connections may take pool ports; move --passive-ports below it',
    )
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`ftp-pasv-proxy: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  },
)
