// lftp "fixes" a 227 that names 127.x by itself, so loopback cannot show lftp failing against a
// wrong passive address. Here it fails for real, in network namespaces this test creates:
//
//   cli (lftp)                px (the built CLI proxy)            srv (vsftpd)
//   c0 10.210.2.2 ---------- p0 10.210.2.1
//                            p1 10.210.1.1 ----------------------- s0 10.210.1.2 (listens)
//                                                                  s1 10.210.9.2 (advertised, on
//                                                                     a second link of its own)
//
// vsftpd advertises 10.210.9.2 (pasv_address). Only cli<->px and px<->srv are joined; cli routes
// 10.210.1.0/24 via px (px forwards, so lftp can log in directly), srv routes 10.210.2.0/24 back,
// and nothing has a route to 10.210.9.0/24 but srv, nor a default route: a connect to 10.210.9.2
// from cli or px fails at once with ENETUNREACH and sends no packet. Every packet stays inside
// these namespaces (the root namespace, which has real routes, never sends to 10.210.x).
// Direct, lftp dials 10.210.9.2 and fails; through the proxy the download and an upload work.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { findBinary } from './lib/bin.js'
import type { ClientResult } from './lib/clients.js'
import { makeRandomFile, sha256File } from './lib/files.js'
import { runProcess } from './lib/proc.js'

t.setTimeout(90_000)

const PREFIX = 'fpp-lftp'
const NS = { cli: `${PREFIX}-cli-${process.pid}`, px: `${PREFIX}-px-${process.pid}`, srv: `${PREFIX}-srv-${process.pid}` }
const CLI_ADDR = '10.210.2.2'
const PX_CLIENT_SIDE = '10.210.2.1'
const PX_SERVER_SIDE = '10.210.1.1'
const SRV_ADDR = '10.210.1.2'
const SRV_HIDDEN = '10.210.9.2'
const SRV_PORT = 25000
const PROXY_PORT = 25400
const SIZE = 4 * 1024 * 1024
const MAIN_JS = fileURLToPath(new URL('../../dist/main.js', import.meta.url))

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
const inNs = (ns: string, ...args: string[]): string => ip('netns', 'exec', ns, ...args)

// ---- cleanup, run in reverse order of set-up, whatever happens ----

const cleanups: Array<() => Promise<void> | void> = []
t.teardown(async () => {
  for (const step of cleanups.reverse()) {
    try {
      await step()
    } catch (err) {
      t.comment(`cleanup: ${(err as Error).message}`)
    }
  }
})

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

// Namespaces of an earlier run of this file that was killed before its teardown: their names
// carry that run's pid, and only those whose process is gone are removed.
for (const line of ip('netns', 'list').split('\n')) {
  const m = new RegExp(`^(${PREFIX}-(?:cli|px|srv)-(\\d+))\\b`).exec(line)
  if (m !== null && !pidAlive(Number(m[2]))) ip('netns', 'delete', m[1]!)
}

// ---- the namespaces ----

for (const ns of Object.values(NS)) {
  ip('netns', 'add', ns)
  cleanups.push(() => void ip('netns', 'delete', ns))
  inNs(ns, 'ip', 'link', 'set', 'lo', 'up')
}
// Each veth is created with both ends directly inside namespaces: nothing in the root one.
ip('-n', NS.cli, 'link', 'add', 'c0', 'type', 'veth', 'peer', 'name', 'p0', 'netns', NS.px)
ip('-n', NS.px, 'link', 'add', 'p1', 'type', 'veth', 'peer', 'name', 's0', 'netns', NS.srv)
// The address srv advertises, on a second link of srv's own (a veth with both ends in srv; the
// dummy link type needs a module these machines lack).
ip('-n', NS.srv, 'link', 'add', 's1', 'type', 'veth', 'peer', 'name', 's2')
const addrs: Array<[string, string, string]> = [
  [NS.cli, 'c0', `${CLI_ADDR}/24`],
  [NS.px, 'p0', `${PX_CLIENT_SIDE}/24`],
  [NS.px, 'p1', `${PX_SERVER_SIDE}/24`],
  [NS.srv, 's0', `${SRV_ADDR}/24`],
  [NS.srv, 's1', `${SRV_HIDDEN}/24`],
]
for (const [ns, dev, cidr] of addrs) {
  ip('-n', ns, 'addr', 'add', cidr, 'dev', dev)
  ip('-n', ns, 'link', 'set', dev, 'up')
}
ip('-n', NS.srv, 'link', 'set', 's2', 'up')
// Routes for the test's own subnets only; never a default route.
ip('-n', NS.cli, 'route', 'add', '10.210.1.0/24', 'via', PX_CLIENT_SIDE)
ip('-n', NS.srv, 'route', 'add', '10.210.2.0/24', 'via', PX_SERVER_SIDE)
// px routes between cli and srv, so that lftp can reach the server's control port directly.
inNs(NS.px, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1')

// ---- processes inside the namespaces ----

interface NsProcess {
  child: ChildProcess
  output: () => string
  stop: () => Promise<void>
}

/**
 * Runs `cmd` inside `ns` as this process's child, in its own process group, with a
 * parent-death signal (ip netns exec and setpriv both exec in place: same PID).
 */
async function spawnInNs(ns: string, cmd: string[]): Promise<NsProcess> {
  const child = spawn('ip', ['netns', 'exec', ns, findBinary('setpriv'), '--pdeathsig', 'KILL', '--', ...cmd], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let out = ''
  const add = (b: Buffer): void => {
    out = (out + b.toString('utf8')).slice(-65536)
  }
  child.stdout?.on('data', add)
  child.stderr?.on('data', add)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve)
    child.once('error', reject)
  })
  const pid = child.pid as number
  const kill = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig)
    } catch {
      // Already gone.
    }
  }
  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        kill('SIGTERM')
        const timer = setTimeout(() => kill('SIGKILL'), 5000)
        await exited
        clearTimeout(timer)
      }
      // vsftpd's session processes may outlive their master.
      kill('SIGKILL')
    })()
    return stopping
  }
  return { child, output: () => out, stop }
}

async function waitFor(what: string, p: NsProcess, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (check()) return
    if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${what} exited: ${p.output()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`${what} not ready within 10 s: ${p.output()}`)
}

const listening = (ns: string, port: number): boolean => inNs(ns, 'ss', '-Hltn', `sport = :${port}`).trim() !== ''

// vsftpd in srv, as test/e2e/lib/servers.ts's startVsftpd but on 10.210.1.2, advertising 10.210.9.2.
const work = await mkdtemp(join(tmpdir(), 'fpp-lftp-netns-'))
cleanups.push(() => rm(work, { recursive: true, force: true }))
await chmod(work, 0o755)
const root = join(work, 'root')
await mkdir(join(root, 'upload'), { recursive: true })
await mkdir(join(work, 'empty'))
await chmod(root, 0o755)
await chmod(join(root, 'upload'), 0o777)
const file = await makeRandomFile(root, 'big.bin', SIZE)
const upload = await makeRandomFile(work, 'up.bin', SIZE - 4321)
const conf = join(work, 'vsftpd.conf')
await writeFile(
  conf,
  [
    'listen=YES',
    'listen_ipv6=NO',
    'background=NO',
    `listen_address=${SRV_ADDR}`,
    `listen_port=${SRV_PORT}`,
    'seccomp_sandbox=NO',
    `secure_chroot_dir=${join(work, 'empty')}`,
    'anonymous_enable=YES',
    'local_enable=NO',
    'no_anon_password=YES',
    `anon_root=${root}`,
    'ftp_username=daemon',
    'write_enable=YES',
    'anon_upload_enable=YES',
    'anon_other_write_enable=YES',
    'anon_umask=022',
    'pasv_enable=YES',
    'pasv_min_port=25010',
    'pasv_max_port=25019',
    `pasv_address=${SRV_HIDDEN}`,
    'pasv_addr_resolve=NO',
  ].join('\n') + '\n',
)
const vsftpd = await spawnInNs(NS.srv, [findBinary('vsftpd'), conf])
cleanups.push(() => vsftpd.stop())
await waitFor('vsftpd', vsftpd, () => listening(NS.srv, SRV_PORT))

// The built CLI in px.
if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run "npm run build" first`)
const proxyArgs = [
  process.execPath,
  MAIN_JS,
  '--listen',
  `${PX_CLIENT_SIDE}:${PROXY_PORT}`,
  '--upstream',
  `${SRV_ADDR}:${SRV_PORT}`,
  '--passive-ports',
  '25300-25309',
  '--metrics-listen',
  'off',
  '--log-level',
  'debug',
]
const proxy = await spawnInNs(NS.px, proxyArgs)
cleanups.push(() => proxy.stop())
await waitFor('proxy', proxy, () => proxy.output().includes('"proxy listening"'))

function proxyLog(): Array<Record<string, unknown>> {
  return proxy
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

// ---- lftp in cli ----

const lftpQuote = (s: string): string => `"${s.replace(/["\\]/g, '\\$&')}"`

async function lftpInCli(host: string, port: number, command: string, passive = true): Promise<ClientResult> {
  const script = [
    'set ftp:ssl-allow no',
    `set ftp:passive-mode ${passive ? 'on' : 'off'}`,
    'set ftp:prefer-epsv no',
    'set ftp:ignore-pasv-address no',
    'set net:max-retries 1',
    'set net:timeout 5',
    'set xfer:clobber on',
    'set cmd:fail-exit yes',
    `open -u anonymous,lftp@ ftp://${host}:${port}`,
    command,
  ].join('; ')
  const res = await runProcess('ip', ['netns', 'exec', NS.cli, findBinary('lftp'), '--norc', '-d', '-c', script], { timeoutMs: 30_000 })
  const sent = res.stderr
    .split('\n')
    .map((l) => /^---> (.+)$/.exec(l.replace(/\r$/, ''))?.[1])
    .filter((c): c is string => c !== undefined)
  return { ...res, sent }
}

t.test('the topology: cli and px have no route to the advertised address, srv owns it', async (t) => {
  for (const ns of [NS.cli, NS.px]) {
    t.throws(() => inNs(ns, 'ip', 'route', 'get', SRV_HIDDEN), `${ns}: no route to ${SRV_HIDDEN}`)
    t.notMatch(inNs(ns, 'ip', 'route', 'show'), /default/, `${ns}: no default route`)
  }
  t.notMatch(inNs(NS.srv, 'ip', 'route', 'show'), /default/, 'srv: no default route')
  t.match(inNs(NS.srv, 'ip', '-o', 'addr', 'show', 'dev', 's1'), SRV_HIDDEN, 'srv owns 10.210.9.2 on a second link')
  t.match(inNs(NS.cli, 'ip', 'route', 'get', SRV_ADDR), new RegExp(`via ${PX_CLIENT_SIDE.replace(/\./g, '\\.')}`), 'cli reaches the server only through px')
})

t.test('direct: lftp logs in, gets a 227 naming 10.210.9.2 and cannot connect', async (t) => {
  const out = join(work, 'direct.bin')
  const r = await lftpInCli(SRV_ADDR, SRV_PORT, `get big.bin -o ${lftpQuote(out)}`)
  t.not(r.code, 0, 'lftp fails', { stderr: r.stderr })
  t.match(r.stderr, /<--- 230 /, 'the login worked: the control connection is fine')
  t.ok(r.sent.includes('PASV'), 'lftp sent PASV', { sent: r.sent })
  t.notOk(r.sent.includes('EPSV'), 'and no EPSV')
  t.match(r.stderr, /<--- 227 Entering Passive Mode \(10,210,9,2,/, 'vsftpd advertised 10.210.9.2')
  t.match(r.stderr, /Connecting data socket to \(10\.210\.9\.2\)/, 'lftp dialled the advertised address (no "fix")')
  t.match(r.stderr, /Network is unreachable/, 'and cli has no route to it')
  t.notOk(existsSync(out) && (await sha256File(out)) === file.sha256, 'no file was downloaded')
})

t.test('through the proxy: lftp downloads and uploads, sha256 equal', async (t) => {
  const from = proxyLog().length
  const out = join(work, 'via-proxy.bin')
  const r = await lftpInCli(PX_CLIENT_SIDE, PROXY_PORT, `get big.bin -o ${lftpQuote(out)}`)
  t.equal(r.code, 0, 'lftp get exits 0', { stderr: r.stderr.slice(-3000), proxy: proxy.output().slice(-3000) })
  t.equal(r.code === 0 ? await sha256File(out) : null, file.sha256, 'downloaded sha256 equal')
  t.ok(r.sent.includes('PASV') && !r.sent.includes('EPSV'), 'lftp used PASV', { sent: r.sent })
  t.match(r.stderr, /<--- 227 Entering Passive Mode \(10,210,2,1,/, 'the client got the proxy\'s own address in the 227')

  const rewrites = proxyLog()
    .slice(from)
    .filter((l) => l['msg'] === 'passive reply rewritten')
  t.equal(rewrites.length, 1, 'the proxy rewrote one passive reply')
  const w = rewrites[0] ?? {}
  t.match(String(w['fromServer']), /\(10,210,9,2,/, 'vsftpd sent 10.210.9.2 to the proxy')
  t.match(String(w['dialled']), /^10\.210\.1\.2:/, 'the proxy dialled the server at its control address')
  t.match(String(w['toClient']), /\(10,210,2,1,/, 'and gave the client its own 10.210.2.1')

  const put = await lftpInCli(PX_CLIENT_SIDE, PROXY_PORT, `put ${lftpQuote(upload.path)} -o upload/up.bin`)
  t.equal(put.code, 0, 'lftp put exits 0', { stderr: put.stderr.slice(-3000) })
  t.equal(await sha256File(join(root, 'upload', 'up.bin')).catch(() => null), upload.sha256, 'stored sha256 equal')
})

t.test('through the proxy in active mode: PORT to the client at 10.210.2.2 works', async (t) => {
  const from = proxyLog().length
  const out = join(work, 'via-proxy-port.bin')
  const r = await lftpInCli(PX_CLIENT_SIDE, PROXY_PORT, `get big.bin -o ${lftpQuote(out)}`, false)
  t.equal(r.code, 0, 'lftp get exits 0', { stderr: r.stderr.slice(-3000), proxy: proxy.output().slice(-3000) })
  t.equal(r.code === 0 ? await sha256File(out) : null, file.sha256, 'downloaded sha256 equal')
  t.ok(r.sent.some((c) => c.startsWith('PORT 10,210,2,2,')), 'lftp sent PORT with its own 10.210.2.2', { sent: r.sent })
  const verbs = proxyLog()
    .slice(from)
    .filter((l) => l['msg'] === 'command')
    .map((l) => (l['cmd'] as { verb: string }).verb)
  t.same(
    verbs.filter((v) => ['PASV', 'EPSV', 'PORT', 'EPRT'].includes(v)),
    ['PORT'],
    'the proxy saw PORT and no other data command',
  )
})
