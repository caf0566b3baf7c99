// SIGTERM during a 64 MiB transfer: new connections are refused, the transfer completes with
// equal sha256, the process exits 0. Runs the built program. Ports: 22900-22999.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { ftpUrl } from './lib/clients.js'
import { runProcess } from './lib/proc.js'
import { makeRandomFile, sha256File, startVsftpd } from './lib/servers.js'

t.setTimeout(120_000)
const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url))

t.test('SIGTERM lets a running transfer finish, refuses new clients, exits 0', async (t) => {
  const server = await startVsftpd({ port: 22900, pasvMin: 22910, pasvMax: 22949, pasvAddress: '127.0.0.99' })
  t.teardown(() => server.stop())
  const file = await makeRandomFile(server.root, 'big.bin', 64 * 1024 * 1024)
  const work = await mkdtemp(join(tmpdir(), 'fpp-shutdown-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))

  const child = spawn(process.execPath, [MAIN, '--listen', '127.0.0.1:22950', '--upstream', '127.0.0.1:22900', '--passive-ports', '22960-22979', '--shutdown-grace', '60s'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let log = ''
  child.stdout.on('data', (d: Buffer) => (log += d.toString()))
  child.stderr.on('data', (d: Buffer) => (log += d.toString()))
  while (!log.includes('proxy listening')) await new Promise((r) => setTimeout(r, 50))
  const exited = once(child, 'exit')

  // 16 MB/s: the 64 MiB transfer lasts about 4 s, long enough to signal in the middle.
  const login = { host: '127.0.0.1', port: 22950, user: server.user, password: server.password }
  const out = join(work, 'out.bin')
  const transfer = runProcess('curl', ['-q', '-sS', '--disable-epsv', '--no-ftp-skip-pasv-ip', '--limit-rate', '16M', '-o', out, ftpUrl(login, 'big.bin')], { timeoutMs: 60_000 })
  while (!log.includes('passive reply rewritten')) await new Promise((r) => setTimeout(r, 50))
  await new Promise((r) => setTimeout(r, 1000))
  child.kill('SIGTERM')
  while (!log.includes('shutting down')) await new Promise((r) => setTimeout(r, 20))

  const refused = await new Promise<string>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: 22950 })
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'))
    s.on('connect', () => {
      s.destroy()
      resolve('connected')
    })
  })
  t.equal(refused, 'ECONNREFUSED', 'a new connection is refused')
  const r = await transfer
  t.equal(r.code, 0, 'curl exits 0')
  t.equal(await sha256File(out), file.sha256, 'the running transfer completed with equal sha256')
  const [code] = await exited
  t.equal(code, 0, 'the proxy exits 0')
  t.match(log, /"sessionsCut":0/, 'no session was cut')
})
