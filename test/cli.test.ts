// The command line as an operator meets it: bad settings exit 2 with a message that names the
// setting; an address the system refuses exits 1 with one line; --help; the demo. Runs the
// built program (npm test builds first).
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`)

function run(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { PATH: process.env.PATH ?? '', ...env },
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

t.test('bad settings: exit 2 and a message naming the setting', async (t) => {
  const table: Array<[string[], Record<string, string>, RegExp]> = [
    [[], {}, /upstream: required/],
    [['--upstream', 'ftp.example'], {}, /^ftp-pasv-proxy: upstream/],
    [['--upstream', '127.0.0.1:99999'], {}, /upstream/],
    [['--upstream', '127.0.0.1:21', '--passive-ports', '50100-50000'], {}, /passivePorts: min 50100 is above max 50000/],
    [['--upstream', '127.0.0.1:21', '--passive-ports', '0-10'], {}, /passivePorts/],
    [['--upstream', '127.0.0.1:21', '--listen', 'nowhere'], {}, /listen/],
    [['--upstream', '127.0.0.1:21', '--advertise-address', 'abc'], {}, /advertiseAddress/],
    [['--upstream', '127.0.0.1:21', '--upstream-data-address', 'both'], {}, /upstreamDataAddress/],
    [['--upstream', '127.0.0.1:21', '--connect-timeout', '5x'], {}, /connectTimeout/],
    [['--upstream', '127.0.0.1:21', '--data-accept-timeout', '0s'], {}, /dataAcceptTimeout/],
    [['--upstream', '127.0.0.1:21', '--idle-timeout=-1'], {}, /idleTimeout/],
    [['--upstream', '127.0.0.1:21', '--log-level', 'loud'], {}, /logLevel/],
    [['--upstream', '127.0.0.1:21', '--no-such-flag'], {}, /no-such-flag/],
    [['--upstream', '127.0.0.1:21', '--config', '/nonexistent/proxy.yaml'], {}, /config: cannot read/],
    [[], { FTP_PROXY_UPSTREAM: '127.0.0.1:21', FTP_PROXY_PASSIVE_PORTS: 'lots' }, /passivePorts/],
  ]
  for (const [args, env, message] of table) {
    const r = run(args, env)
    t.equal(r.code, 2, `exit 2 for ${args.join(' ')} ${JSON.stringify(env)}`)
    t.match(r.stderr, message, `message for ${args.join(' ')} ${JSON.stringify(env)}`)
    t.equal(r.stderr.trim().split('\n').length, 2, 'one message and one pointer to --help')
  }
})

t.test('--help lists every setting and exits 0', async (t) => {
  const r = run(['--help'])
  t.equal(r.code, 0)
  for (const flag of ['--listen', '--upstream', '--passive-ports', '--advertise-address', '--upstream-data-address', '--connect-timeout', '--data-accept-timeout', '--idle-timeout', '--config', '--log-level']) {
    t.match(r.stdout, flag)
  }
  t.match(r.stdout, 'FTP_PROXY_LISTEN')
})

t.test('the demo shows the direct failure and the proxied success', async (t) => {
  const r = run(['demo'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /227 Entering Passive Mode \(127,0,0,99,/)
  t.match(r.stdout, /=> FAILED: .*ECONNREFUSED 127\.0\.0\.99/)
  t.match(r.stdout, /=> SUCCEEDED: 4194304 bytes, sha256 [0-9a-f]{64} \(identical\)/)
  t.match(r.stdout, /client got: {3}227 Entering Passive Mode \(127,0,0,1,/)
})

t.test('a pool inside the kernel ephemeral range gets a warning at start', async (t) => {
  const { spawn } = await import('node:child_process')
  const child = spawn(process.execPath, [MAIN, '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9', '--passive-ports', '40000-40009', '--metrics-listen', 'off'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let log = ''
  child.stdout.on('data', (d: Buffer) => (log += d.toString()))
  const end = Date.now() + 10_000
  while (!log.includes('proxy listening') && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
  const warning = log.split('\n').find((l) => l.includes('ephemeral'))
  t.ok(warning, 'a warning line')
  t.match(JSON.parse(warning ?? '{}'), { level: 40, passivePorts: '40000-40009', overlap: '40000-40009' })
  child.kill('SIGTERM')
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)))
  t.equal(code, 0)
})

// An address the system refuses (issue 8, finding 11): one line naming the setting and the
// address, exit 1, no stack trace, and `proxy listening` never logged. The test holds the port
// itself. Ports 27640-27643.
async function hold(port: number): Promise<void> {
  const { createServer } = await import('node:net')
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
}

function cannotListen(t: Test, r: { code: number | null; stdout: string; stderr: string }, line: string): void {
  t.equal(r.code, 1, 'exit 1')
  t.equal(r.stderr, `${line}\n`, 'one line on stderr')
  t.notMatch(r.stdout + r.stderr, /\n\s+at |"stack"/, 'no stack trace')
  t.notMatch(r.stdout, /proxy listening/, 'proxy listening is never logged')
  const logged = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string })
  t.match(logged.at(-1), { level: 60, msg: 'cannot listen' }, 'the log ends with a fatal line')
}

t.test('listen: an address already in use', async (t) => {
  await hold(27640)
  const r = run(['--listen', '127.0.0.1:27640', '--upstream', '127.0.0.1:9', '--metrics-listen', 'off'])
  cannotListen(t, r, 'ftp-pasv-proxy: listen: 127.0.0.1:27640 is already in use (EADDRINUSE)')
})

t.test('metricsListen: an address already in use stops the start before the proxy listens', async (t) => {
  await hold(27641)
  const r = run(['--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9', '--metrics-listen', '127.0.0.1:27641'])
  cannotListen(t, r, 'ftp-pasv-proxy: metricsListen: 127.0.0.1:27641 is already in use (EADDRINUSE)')
})

t.test('an address that is not this host (EADDRNOTAVAIL): binding sends no packet', async (t) => {
  // 192.0.2.1 is TEST-NET-1 (RFC 5737), on no interface here.
  const listen = run(['--listen', '192.0.2.1:27642', '--upstream', '127.0.0.1:9', '--metrics-listen', 'off'])
  cannotListen(t, listen, 'ftp-pasv-proxy: listen: 192.0.2.1:27642 is not an address of this host (EADDRNOTAVAIL)')
  const metrics = run(['--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9', '--metrics-listen', '192.0.2.1:27643'])
  cannotListen(t, metrics, 'ftp-pasv-proxy: metricsListen: 192.0.2.1:27643 is not an address of this host (EADDRNOTAVAIL)')
})

t.test('a privileged port for a user without the right (EACCES)', async (t) => {
  const { readFileSync } = await import('node:fs')
  const start = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'))
  if (!(start > 1)) throw new Error(`net.ipv4.ip_unprivileged_port_start is ${start}: every user may bind every port here, so EACCES cannot be produced`)
  const port = Math.min(start - 1, 1023)
  const args = [MAIN, '--listen', `127.0.0.1:${port}`, '--upstream', '127.0.0.1:9', '--metrics-listen', 'off']
  let r
  if (process.getuid?.() === 0) {
    // root may bind any port: run the proxy as nobody (setpriv, util-linux). env -u: tap's
    // process-info hook puts a NODE_OPTIONS into children that writes under .tap/, which
    // nobody may not; the proxy does not need it.
    const { findBinary } = await import('./e2e/lib/bin.js')
    const argv = ['--reuid=65534', '--regid=65534', '--clear-groups', findBinary('env'), '-u', 'NODE_OPTIONS', process.execPath, ...args]
    const s = spawnSync(findBinary('setpriv'), argv, {
      encoding: 'utf8',
      timeout: 60_000,
      env: { PATH: process.env.PATH ?? '' },
    })
    r = { code: s.status, stdout: s.stdout, stderr: s.stderr }
  } else {
    r = run(args.slice(1))
  }
  cannotListen(t, r, `ftp-pasv-proxy: listen: 127.0.0.1:${port} is not permitted (EACCES): a port below 1024 needs root or CAP_NET_BIND_SERVICE`)
})
