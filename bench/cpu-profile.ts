// A CPU profile of the proxy's data path (node --cpu-prof): 1 GiB RETR or STOR with curl through
// the built proxy, vsftpd behind it advertising 127.0.0.99, the payload on /dev/shm; prints the
// functions with the most self time. Ports: 24300-24339.
//
//   npm run build
//   node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/cpu-profile.ts RETR|STOR [PROXY_MAIN]
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runProcess } from '../test/e2e/lib/proc.js'
import { makeRandomFile, startVsftpd } from '../test/e2e/lib/servers.js'
import { PROXY_MAIN } from './lib.js'
process.env['TMPDIR'] = '/dev/shm'
const dir = await mkdtemp(join(tmpdir(), 'cpu-profile-'))

const vs = await startVsftpd({ port: 24300, pasvMin: 24310, pasvMax: 24319, pasvAddress: '127.0.0.99' })
const f = await makeRandomFile(vs.root, 'big.bin', 1024 * 1024 * 1024)
const px = spawn('node', ['--cpu-prof', `--cpu-prof-dir=${dir}`, process.argv[3] ?? PROXY_MAIN, '--listen', '127.0.0.1:24320', '--upstream', '127.0.0.1:24300', '--passive-ports', '24330-24339', '--metrics-listen', 'off', '--log-level', 'warn'], { stdio: 'inherit' })
await new Promise((r) => setTimeout(r, 1500))
const op = process.argv[2] ?? 'RETR'
const args = op === 'RETR' ? ['-sS', '-o', '/dev/null', 'ftp://anonymous:a@127.0.0.1:24320/big.bin'] : ['-sS', '-T', f.path, 'ftp://anonymous:a@127.0.0.1:24320/upload/up.bin']
const t0 = performance.now()
const r = await runProcess('curl', args, { timeoutMs: 120_000 })
console.log(op, r.code, ((1024 / 1.048576) / ((performance.now() - t0) / 1000)).toFixed(0), 'MB/s')
px.kill('SIGINT')
await new Promise((r) => px.once('exit', r))
await vs.stop()
const file = readdirSync(dir).find((n) => n.endsWith('.cpuprofile'))!
const prof = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8'))
const self = new Map<string, number>()
const byId = new Map<number, { callFrame: { functionName: string; url: string; lineNumber: number } }>()
for (const n of prof.nodes) byId.set(n.id, n)
const dt: number[] = prof.timeDeltas
let total = 0
prof.samples.forEach((id: number, i: number) => {
  const n = byId.get(id)!
  const cf = n.callFrame
  const key = `${cf.functionName || '(anonymous)'} ${cf.url.replace(/^.*\/(node_modules|dist|lib)\//, '$1/')}:${cf.lineNumber + 1}`
  const d = dt[i] ?? 0
  self.set(key, (self.get(key) ?? 0) + d)
  total += d
})
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, 15)
console.log(`profile ${file}, ${(total / 1e6).toFixed(2)} s sampled`)
for (const [k, us] of rows) console.log(`${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1e6).toFixed(3)} s  ${k}`)
await rm(dir, { recursive: true, force: true })
