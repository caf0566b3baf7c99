// The cost of FTPS through the proxy: RETR and STOR over PROT P through ftp-pasv-proxy, against
// direct FTPS to the same vsftpd, interleaved in one run, as ratios, with the proxy's CPU seconds
// per GiB, and the protocol and cipher each side negotiated.
//
//   npm run build
//   node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/ftps-cost.ts [--size 1G] [--runs 3]
//
// Paths, each a curl --ssl-reqd transfer of the same random file (from /dev/shm when present):
//   direct  curl -> vsftpd (TLS required on control and data, EPSV so its 127.0.0.99 does not matter)
//   proxy   curl -> ftp-pasv-proxy (TLS toward curl with its own certificate, TLS toward vsftpd,
//           both data legs protected, the server's resumed) -> vsftpd advertising 127.0.0.99
// Through the proxy every byte is decrypted and encrypted again: twice the TLS work of a direct
// transfer, in one more process on the same 2 cores. Ports: 24200-24299.
import { mkdtemp, rm } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { makeCertificates } from '../test/fixtures/certs.js'
import { runProcess } from '../test/e2e/lib/proc.js'
import { makeRandomFile, startVsftpd } from '../test/e2e/lib/servers.js'
import { median, MiB, procCpuSeconds, startProxyProcess } from './lib.js'

const PORTS = { vsftpd: 24200, pasv: { min: 24210, max: 24229 }, proxy: 24230, pool: { min: 24240, max: 24259 } }

interface Sample {
  mbps: number
  cpu: number | null
  tls: string
}

async function curl(port: number, args: string[], size: number, ca: string): Promise<{ mbps: number; tls: string }> {
  const seconds = Math.max(60, Math.ceil(size / (5 * MiB)))
  const r = await runProcess('curl', ['-q', '-sS', '-v', '--ssl-reqd', '--cacert', ca, '--max-time', String(seconds), ...args.map((a) => a.replace('PORT', String(port)))], { timeoutMs: (seconds + 5) * 1000 })
  const [bytes, speed] = r.stdout.trim().split(' ').map(Number)
  if (r.code !== 0 || bytes !== size || speed === undefined) throw new Error(`curl exited ${r.code} with ${r.stdout.trim()}: ${r.stderr.slice(-500)}`)
  const tls = /SSL connection using (\S+) \/ (\S+)/.exec(r.stderr)
  return { mbps: speed / 1e6, tls: tls === null ? '?' : `${tls[1]} ${tls[2]}` }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { size: { type: 'string', default: '1G' }, runs: { type: 'string', default: '3' } } })
  const m = /^(\d+)([MG])$/i.exec(values.size)
  if (m === null) throw new Error('--size: like 1G or 256M')
  const size = Number(m[1]) * (m[2]!.toUpperCase() === 'G' ? 1024 : 1) * MiB
  const runs = Number(values.runs)
  if (existsSync('/dev/shm')) process.env['TMPDIR'] = '/dev/shm'
  const tmp = await mkdtemp(join(tmpdir(), 'bench-ftps-'))
  const certs = makeCertificates(tmp)
  const server = await startVsftpd({ port: PORTS.vsftpd, pasvMin: PORTS.pasv.min, pasvMax: PORTS.pasv.max, pasvAddress: '127.0.0.99', tls: { cert: certs.cert, key: certs.key, required: true } })
  const proxy = await startProxyProcess({
    listenPort: PORTS.proxy,
    upstreamPort: PORTS.vsftpd,
    pool: PORTS.pool,
    metrics: false,
    logLevel: 'info',
    extraArgs: ['--tls-cert', certs.cert, '--tls-key', certs.key, '--upstream-ca', certs.caCert],
  })
  const file = await makeRandomFile(server.root, 'big.bin', size)
  const url = (path: string): string => `ftp://anonymous:a%40@127.0.0.1:PORT/${path}`
  const retr = ['-o', '/dev/null', '-w', '%{size_download} %{speed_download}', url('big.bin')]
  const stor = ['-T', file.path, '-w', '%{size_upload} %{speed_upload}', url('upload/stor.bin')]
  const results: Record<string, Sample[]> = { 'direct RETR': [], 'proxy RETR': [], 'direct STOR': [], 'proxy STOR': [] }
  try {
    for (let i = 0; i <= runs; i++) {
      for (const [op, args] of [['RETR', retr], ['STOR', stor]] as const) {
        for (const path of ['direct', 'proxy'] as const) {
          const before = path === 'proxy' ? procCpuSeconds(proxy.pid) : null
          const r = await curl(path === 'direct' ? PORTS.vsftpd : PORTS.proxy, [...args], size, certs.caCert)
          const cpu = before === null ? null : procCpuSeconds(proxy.pid) - before
          // The first round warms up (page cache, JIT) and is not counted.
          if (i > 0) results[`${path} ${op}`]!.push({ mbps: r.mbps, cpu, tls: r.tls })
        }
      }
    }
  } finally {
    await proxy.stop()
    await server.stop()
    await rm(tmp, { recursive: true, force: true })
  }
  const gib = size / (1024 * MiB)
  const lines = [
    `FTPS cost, ${values.size} per transfer, ${runs} runs per path after a warm-up, interleaved; curl --ssl-reqd (EPSV), vsftpd 3.0.3 requiring TLS`,
    '',
    '| transfer | path | MB/s median (min-max) | ratio to direct | proxy CPU s per GiB | TLS (curl side) |',
    '|---|---|---|---|---|---|',
  ]
  for (const op of ['RETR', 'STOR']) {
    const direct = median(results[`direct ${op}`]!.map((s) => s.mbps))
    for (const path of ['direct', 'proxy']) {
      const samples = results[`${path} ${op}`]!
      const mbps = samples.map((s) => s.mbps)
      const cpu = samples.map((s) => s.cpu).filter((c): c is number => c !== null)
      lines.push(
        `| ${op} | ${path} | ${median(mbps).toFixed(0)} (${Math.min(...mbps).toFixed(0)}-${Math.max(...mbps).toFixed(0)}) | ${(median(mbps) / direct).toFixed(2)} | ${cpu.length === 0 ? '-' : (median(cpu) / gib).toFixed(2)} | ${samples[0]?.tls ?? '?'} |`,
      )
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`)
  return 0
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  },
)
