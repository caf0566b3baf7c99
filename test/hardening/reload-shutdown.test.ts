// Hot reload on SIGHUP and shutdown on SIGTERM, on the built program in front of vsftpd, with a
// transfer running across each. Ports: 27100-27199.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { pasvEndpoint, RawFtp } from '../fixtures/raw-ftp.js'
import { makeRandomFile, startVsftpd } from '../e2e/lib/servers.js'

t.setTimeout(180_000)
const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url))
const server = await startVsftpd({ port: 27100, pasvMin: 27110, pasvMax: 27149, pasvAddress: '127.0.0.99' })
t.teardown(() => server.stop())
const file = await makeRandomFile(server.root, 'f.bin', 8 * 1024 * 1024)
const work = await mkdtemp(join(tmpdir(), 'fpp-reload-'))
t.teardown(() => rm(work, { recursive: true, force: true }))

interface Running {
  child: ChildProcess
  log: () => string
  exited: Promise<[number | null, string | null]>
}

async function startCli(t: Test, args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let log = ''
  child.stdout.on('data', (d: Buffer) => (log += d.toString()))
  child.stderr.on('data', (d: Buffer) => (log += d.toString()))
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>
  const end = Date.now() + 10_000
  while (!log.includes('proxy listening')) {
    if (Date.now() > end) throw new Error(`proxy did not start: ${log}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return { child, log: () => log, exited }
}

/** A RETR read slowly (one chunk per 40 ms): seconds long, to span a signal. */
async function slowRetr(port: number): Promise<{ done: Promise<{ code: number; sha256: string }>; started: Promise<void> }> {
  const c = await RawFtp.connect('127.0.0.1', port)
  await c.login(server.user, server.password)
  const ep = pasvEndpoint((await c.cmd('PASV')).text)
  let began!: () => void
  const started = new Promise<void>((r) => (began = r))
  const data = new Promise<Buffer>((resolve) => {
    const s = net.connect(ep.port, ep.host)
    const chunks: Buffer[] = []
    s.on('data', (d: Buffer) => {
      began()
      chunks.push(d)
      s.pause()
      setTimeout(() => s.resume(), 40)
    })
    s.on('error', () => resolve(Buffer.concat(chunks)))
    s.on('end', () => resolve(Buffer.concat(chunks)))
  })
  const done = (async () => {
    const r = await c.cmd('RETR f.bin').catch(() => ({ code: 0, text: '' }))
    const got = await data
    c.close()
    return { code: r.code, sha256: createHash('sha256').update(got).digest('hex') }
  })()
  return { done, started }
}

async function firstReply(port: number): Promise<{ code: number | undefined; text: string | undefined }> {
  const c = await RawFtp.connect('127.0.0.1', port)
  const r = await c.reply()
  c.close()
  return { code: r?.code, text: r?.text }
}

async function pasvText(port: number): Promise<string> {
  const c = await RawFtp.connect('127.0.0.1', port)
  await c.login(server.user, server.password)
  const r = await c.cmd('PASV')
  await c.cmd('QUIT')
  c.close()
  return r.text
}

async function metric(port: number, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return Number(line?.split(' ')[1])
}

t.test('SIGHUP: new values for the next session, a transfer across it intact, a broken file refused', async (t) => {
  const cfg = join(work, 'proxy.yaml')
  const base = 'upstream: 127.0.0.1:27100\nlisten: 127.0.0.1:27150\npassivePorts: 27160-27169\nmetricsListen: 127.0.0.1:27190\n'
  await writeFile(cfg, base)
  const proxy = await startCli(t, ['--config', cfg])
  const slow = await slowRetr(27150)
  await slow.started
  t.match(await pasvText(27150), /\(127,0,0,1,/, 'before: the dialled address is advertised')

  await writeFile(cfg, `${base}advertiseAddress: 127.0.0.2\n`)
  proxy.child.kill('SIGHUP')
  await waitFor(() => proxy.log().includes('config reloaded'))
  t.match(await pasvText(27150), /\(127,0,0,2,/, 'after: the new advertised address, for the next session')

  await writeFile(cfg, `${base}advertiseAddress: 127.0.0.2\nmaxSessionsPerClient: 1\n`)
  proxy.child.kill('SIGHUP')
  await waitFor(() => proxy.log().split('config reloaded').length === 3)
  const limited = await firstReply(27150)
  t.equal(limited.code, 421, 'the new limit holds: the running transfer is the one session allowed')

  await writeFile(cfg, `${base}advertiseAddress: [not valid\n`)
  proxy.child.kill('SIGHUP')
  await waitFor(() => proxy.log().includes('config reload rejected'))
  t.match(proxy.log(), /config reload rejected; the running config stays/)
  t.equal((await firstReply(27150)).code, 421, 'the running config stays')
  t.equal(await metric(27190, 'ftp_proxy_config_reloads_total{result="ok"}'), 2)
  t.equal(await metric(27190, 'ftp_proxy_config_reloads_total{result="rejected"}'), 1)

  const r = await slow.done
  t.equal(r.code, 226, 'the transfer across three reloads completes')
  t.equal(r.sha256, file.sha256, 'with equal sha256')
  proxy.child.kill('SIGTERM')
  t.equal((await proxy.exited)[0], 0)
})

t.test('shutdown: a second signal cuts what is left, exit 0', async (t) => {
  const proxy = await startCli(t, ['--listen', '127.0.0.1:27151', '--upstream', '127.0.0.1:27100', '--passive-ports', '27170-27174', '--metrics-listen', 'off', '--shutdown-grace', '60s'])
  const slow = await slowRetr(27151)
  await slow.started
  proxy.child.kill('SIGTERM')
  await waitFor(() => proxy.log().includes('shutting down'))
  const started = Date.now()
  proxy.child.kill('SIGTERM')
  const [code] = await proxy.exited
  t.equal(code, 0, 'exit 0')
  t.ok(Date.now() - started < 5000, 'promptly')
  t.match(proxy.log(), /"sessionsCut":1/, 'the last line counts the session cut')
  t.not((await slow.done).sha256, file.sha256, 'the cut transfer did not complete')
})

t.test('shutdown: the end of the grace cuts what is left, exit 0', async (t) => {
  const proxy = await startCli(t, ['--listen', '127.0.0.1:27152', '--upstream', '127.0.0.1:27100', '--passive-ports', '27175-27179', '--metrics-listen', 'off', '--shutdown-grace', '1s'])
  const slow = await slowRetr(27152)
  await slow.started
  const started = Date.now()
  proxy.child.kill('SIGTERM')
  const [code] = await proxy.exited
  t.equal(code, 0, 'exit 0')
  const took = Date.now() - started
  t.ok(took >= 900 && took < 6000, `after the grace (${took} ms)`)
  t.match(proxy.log(), /"sessionsCut":1/)
  await slow.done
})

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}
