// Large and TLS-related replies from real servers, through the proxy (issue 8, must-show 7 and 8).
//
// - Finding 8: every multi-line reply used to be buffered whole and capped at 64 KiB, so a STAT
//   of a large directory ended the session with 421. A STAT of a directory of 10,000 files with
//   names of 70 bytes (over 1 MiB of reply) from vsftpd must reach the client complete, line for
//   line what vsftpd sends directly; a multi-line 227 over the reply limit (the one reply that
//   is still assembled) still ends only its own session.
// - Finding 7: AUTH TLS was passed to the server; after its 234 the client's ClientHello was
//   framed on LF and held, and lftp (ftp:ssl-allow yes, its default) hung against any server that
//   offers TLS. The proxy answers AUTH, PBSZ and PROT itself with 502 and drops them from FEAT,
//   so lftp falls back to clear FTP: against a vsftpd that offers TLS without forcing it
//   (configured here: servers.ts has no TLS options), the download completes within 20 s.
//
// Ports: 27400-27479 (vsftpd STAT 27400, its passive range 27401-27420, proxy pool 27421-27430;
// scripted 227 server 27431, pool 27432-27439; TLS vsftpd 27440, passive 27441-27460, pool
// 27461-27470; scripted AUTH server 27471, pool 27472-27479).
import { spawn } from 'node:child_process'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { freshTransfer, sha, startFaultServer, waitFor } from '../faults/helpers.js'
import { metricValue, startProxy } from '../fixtures/proxy.js'
import { RawFtp } from '../fixtures/raw-ftp.js'
import { findBinary } from './lib/bin.js'
import { runProcess } from './lib/proc.js'
import { makeRandomFile, sha256File, startVsftpd } from './lib/servers.js'

t.setTimeout(180_000)

const MIB = 1024 * 1024

// ---- a control connection that reads replies of any size ------------------------------------

/**
 * A bare control connection that keeps every byte and finds reply ends itself: RawFtp caps a
 * reply at 1 MiB, and the STAT reply here is larger on purpose.
 */
class BigReplies {
  readonly socket: net.Socket
  #buf = Buffer.alloc(0)
  #closed = false

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on('data', (c: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, c])
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.#closed = true
    })
  }

  static async connect(host: string, port: number): Promise<BigReplies> {
    const socket = net.connect({ host, port })
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    return new BigReplies(socket)
  }

  get closed(): boolean {
    return this.#closed
  }

  /**
   * The next complete reply as its raw lines (CRLF kept), or null when the connection closed or
   * nothing complete came within `ms`. RFC 959 4.2: a reply that starts "xyz-" ends on the first
   * line that starts "xyz ".
   */
  async reply(ms = 20_000): Promise<{ code: number; raw: Buffer } | null> {
    let found: { code: number; raw: Buffer } | null = null
    let scanned = 0
    let code: string | null = null
    const look = (): boolean => {
      for (;;) {
        const lf = this.#buf.indexOf(0x0a, scanned)
        if (lf === -1) return false
        const line = this.#buf.subarray(scanned, lf + 1).toString('latin1')
        scanned = lf + 1
        if (code === null) {
          const m = /^(\d{3})([ -])/.exec(line)
          if (m === null) continue
          code = m[1]!
          if (m[2] === '-') continue
        } else if (!line.startsWith(`${code} `)) {
          continue
        }
        found = { code: Number(code), raw: this.#buf.subarray(0, scanned) }
        this.#buf = this.#buf.subarray(scanned)
        return true
      }
    }
    await waitFor(() => look() || this.#closed, ms)
    return found
  }

  async cmd(line: string, ms?: number): Promise<{ code: number; raw: Buffer } | null> {
    this.socket.write(`${line}\r\n`)
    for (;;) {
      const r = await this.reply(ms)
      if (r === null || r.code >= 200) return r
    }
  }

  close(): void {
    this.socket.destroy()
  }
}

async function bigLogin(host: string, port: number): Promise<BigReplies> {
  const c = await BigReplies.connect(host, port)
  const greeting = await c.reply()
  if (greeting?.code !== 220) throw new Error(`greeting: ${greeting?.raw.toString('latin1')}`)
  const user = await c.cmd('USER anonymous')
  if (user?.code === 331) {
    const pass = await c.cmd('PASS anonymous@')
    if (pass?.code !== 230) throw new Error(`login: ${pass?.raw.toString('latin1')}`)
  } else if (user?.code !== 230) {
    throw new Error(`login: ${user?.raw.toString('latin1')}`)
  }
  return c
}

/** The lines of a raw reply, CRLF stripped. */
const linesOf = (raw: Buffer): string[] => raw.toString('latin1').split('\n').slice(0, -1).map((l) => l.replace(/\r$/, ''))

// ---- must-show 7: a STAT of 10,000 files from vsftpd passes through complete ------------------

t.test('STAT of a directory of 10,000 files from vsftpd (over 1 MiB of reply) passes through complete', async (t) => {
  const server = await startVsftpd({ port: 27400, pasvMin: 27401, pasvMax: 27420 })
  t.teardown(() => server.stop())
  const dir = join(server.root, 'big')
  await mkdir(dir)
  await chmod(dir, 0o755)
  for (let i = 0; i < 10_000; i++) {
    // 70-byte names: 64 letters of padding and a number (vsftpd sorts them; the order is its own).
    await writeFile(join(dir, `${'n'.repeat(64)}${String(i).padStart(6, '0')}`), '')
  }
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '27421-27430'], 'info')
  t.teardown(() => p.close())

  const direct = await bigLogin('127.0.0.1', server.port)
  t.teardown(() => direct.close())
  const want = await direct.cmd('STAT big', 60_000)
  t.equal(want?.code, 213, 'vsftpd answers STAT big directly with 213')
  if (want === null) return
  const wantLines = linesOf(want.raw)
  t.ok(want.raw.length > MIB, `the direct reply is over 1 MiB (${want.raw.length} bytes)`)
  t.ok(wantLines.length >= 10_000, `and lists every file (${wantLines.length} lines)`)

  const via = await bigLogin(p.host, p.port)
  t.teardown(() => via.close())
  const got = await via.cmd('STAT big', 60_000)
  t.equal(got?.code, 213, 'through the proxy the client gets the 213 too, not a 421')
  const gotLines = got === null ? [] : linesOf(got.raw)
  t.equal(gotLines.length, wantLines.length, 'as many lines as vsftpd sent directly')
  const firstDiff = wantLines.findIndex((l, i) => gotLines[i] !== l)
  t.equal(firstDiff, -1, `every line equal to the direct reply${firstDiff === -1 ? '' : ` (first difference at line ${firstDiff}: ${JSON.stringify(gotLines[firstDiff])})`}`)
  t.equal(got === null ? '' : sha(got.raw), sha(want.raw), 'byte for byte (sha256 of the whole reply)')

  // The session goes on: another command and a transfer on the same control connection.
  t.equal((await via.cmd('NOOP'))?.code, 200, 'the session still answers NOOP')
  t.notOk(via.closed, 'and is still open')
  t.notOk(
    p.logs.some((l) => l.msg === 'server sent a reply over the limit; closing'),
    'no "reply over the limit" in the log',
  )
})

// ---- must-show 7: a multi-line 227 over the reply limit ends only its own session -------------

t.test('a multi-line 227 over the 64 KiB reply limit ends only that session (421); the proxy serves a new one', async (t) => {
  const file = Buffer.alloc(300_000, 7)
  let huge227 = false
  const server = await startFaultServer({
    port: 27431,
    files: { 'f.bin': file },
    onCommand: async (cmd, s) => {
      if (cmd.verb !== 'PASV' || !huge227) return 'default'
      const port = await s.pasv()
      // 100 KiB of continuation lines, then the tuple on the last line: a 227 the proxy must
      // assemble to rewrite, and cannot hold past its limit.
      const lines = `227-Entering Passive Mode, the long way round\r\n${' padding padding padding padding padding padding padding padding\r\n'.repeat(1600)}`
      s.write(`${lines}227 Entering Passive Mode (127,0,0,1,${port >> 8},${port & 255}).\r\n`)
      return undefined
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '27432-27439'])
  t.teardown(() => p.close())

  // A bystander session, open before and after the hostile reply.
  const other = await RawFtp.connect(p.host, p.port)
  t.teardown(() => other.close())
  await other.login()

  const victim = await BigReplies.connect(p.host, p.port)
  t.teardown(() => victim.close())
  t.equal((await victim.reply())?.code, 220, 'greeting')
  t.equal((await victim.cmd('USER anonymous'))?.code, 331, 'USER')
  t.equal((await victim.cmd('PASS x'))?.code, 230, 'PASS')
  huge227 = true
  const r = await victim.cmd('PASV', 10_000)
  huge227 = false
  t.equal(r?.code, 421, 'the client gets 421 for the over-long 227')
  t.ok(await waitFor(() => victim.closed, 5000), 'and its control connection is closed')
  t.ok(await waitFor(() => server.sessions === 1, 5000), "the server's connection for that session is closed; the bystander's stays")

  t.equal((await other.cmd('NOOP')).code, 200, 'the bystander session still answers')
  await freshTransfer(t, p, 'f.bin', file, 'a new session')
  t.equal((await other.cmd('QUIT')).code, 221, 'the bystander quits normally')
  t.ok(await waitFor(() => p.proxy.sessionCount === 0 && p.proxy.pool.inUse === 0, 5000), 'no session or pool port left')
})

// ---- must-show 8: AUTH TLS against a vsftpd that offers TLS without forcing it ------------------

interface TlsVsftpd {
  port: number
  root: string
  stop(): Promise<void>
}

/**
 * vsftpd 3.0.3 with TLS offered to anonymous logins but forced on nothing: ssl_enable=YES,
 * allow_anon_ssl=YES, force_anon_logins_ssl=NO, force_anon_data_ssl=NO, a self-signed
 * certificate made by openssl in its temp dir. The rest as servers.ts's startVsftpd.
 */
async function startTlsVsftpd(port: number, pasvMin: number, pasvMax: number): Promise<TlsVsftpd> {
  const tmp = await mkdtemp(join(tmpdir(), 'e2e-vsftpd-tls-'))
  await chmod(tmp, 0o755)
  const root = join(tmp, 'root')
  const empty = join(tmp, 'empty')
  await mkdir(join(root, 'upload'), { recursive: true })
  await mkdir(empty)
  await chmod(root, 0o755)
  await chmod(join(root, 'upload'), 0o777)
  const cert = join(tmp, 'cert.pem')
  const key = join(tmp, 'key.pem')
  const made = await runProcess(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1'],
    { timeoutMs: 30_000 },
  )
  if (made.code !== 0) throw new Error(`openssl req failed (${made.code}): ${made.stderr}`)
  const conf = [
    'listen=YES',
    'listen_ipv6=NO',
    'background=NO',
    'listen_address=127.0.0.1',
    `listen_port=${port}`,
    'seccomp_sandbox=NO',
    `secure_chroot_dir=${empty}`,
    'anonymous_enable=YES',
    'local_enable=NO',
    'no_anon_password=YES',
    `anon_root=${root}`,
    'ftp_username=daemon',
    'pasv_enable=YES',
    `pasv_min_port=${pasvMin}`,
    `pasv_max_port=${pasvMax}`,
    'ssl_enable=YES',
    `rsa_cert_file=${cert}`,
    `rsa_private_key_file=${key}`,
    'allow_anon_ssl=YES',
    'force_anon_logins_ssl=NO',
    'force_anon_data_ssl=NO',
  ]
  const confPath = join(tmp, 'vsftpd.conf')
  await writeFile(confPath, conf.join('\n') + '\n')
  // Its own process group (vsftpd forks a process per session) and a parent-death signal, as
  // servers.ts does; stopped by this child's PID only.
  const child = spawn(findBinary('setpriv'), ['--pdeathsig', 'KILL', '--', findBinary('vsftpd'), confPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let output = ''
  child.stdout.on('data', (b: Buffer) => (output = (output + b.toString()).slice(-4096)))
  child.stderr.on('data', (b: Buffer) => (output = (output + b.toString()).slice(-4096)))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('error', reject)
    child.once('spawn', () => resolve(child.pid as number))
  })
  const kill = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig)
    } catch {
      // already gone
    }
  }
  const stop = async (): Promise<void> => {
    kill('SIGTERM')
    const timer = setTimeout(() => kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
    kill('SIGKILL')
    await rm(tmp, { recursive: true, force: true })
  }
  const up = await waitFor(async () => {
    if (child.exitCode !== null) return true
    try {
      const c = await RawFtp.connect('127.0.0.1', port)
      const g = await c.reply(2000).catch(() => null)
      c.close()
      return g?.code === 220
    } catch {
      return false
    }
  }, 10_000)
  if (!up || child.exitCode !== null) {
    await stop()
    throw new Error(`vsftpd (TLS) did not start on 127.0.0.1:${port}: ${output.trim() || '(no output)'}`)
  }
  return { port, root, stop }
}

/** The feature lines of a FEAT reply (RFC 2389 3.2: each starts with a space), trimmed. */
async function features(host: string, port: number): Promise<string[]> {
  const c = await RawFtp.connect(host, port)
  try {
    await c.login()
    const r = await c.cmd('FEAT')
    if (r.code !== 211) throw new Error(`FEAT: ${r.text}`)
    return r.text
      .split('\n')
      .filter((l) => l.startsWith(' '))
      .map((l) => l.trim())
      .sort()
  } finally {
    c.close()
  }
}

const TLS_FEATURE = /^(AUTH\b|PBSZ\b|PROT\b)/i

t.test('AUTH TLS against a vsftpd that offers TLS without forcing it', async (t) => {
  const server = await startTlsVsftpd(27440, 27441, 27460)
  t.teardown(() => server.stop())
  const file = await makeRandomFile(server.root, 'tls-offered.bin', 3 * MIB)
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '27461-27470'], 'debug')
  t.teardown(() => p.close())

  await t.test('FEAT: vsftpd lists AUTH, PBSZ and PROT directly; through the proxy they are gone, the rest kept', async (t) => {
    const direct = await features('127.0.0.1', server.port)
    for (const f of ['AUTH TLS', 'PBSZ', 'PROT']) t.ok(direct.includes(f), `vsftpd's own FEAT lists ${f} (${direct.join(', ')})`)
    const via = await features(p.host, p.port)
    t.same(via.filter((f) => TLS_FEATURE.test(f)), [], `the proxy's FEAT lists no AUTH, PBSZ or PROT (${via.join(', ')})`)
    t.same(via, direct.filter((f) => !TLS_FEATURE.test(f)), 'and every other feature vsftpd lists')
  })

  await t.test('lftp with its defaults (ftp:ssl-allow yes) downloads in clear within 20 s, sha256 equal', async (t) => {
    const tmp = await mkdtemp(join(tmpdir(), 'e2e-lftp-tls-'))
    t.teardown(() => rm(tmp, { recursive: true, force: true }))
    const out = join(tmp, 'got.bin')
    const script = [
      // lftp's default, stated so the test says what it relies on.
      'set ftp:ssl-allow yes',
      // Bounded: a hang ends in a failure, not in tap's timeout.
      'set net:max-retries 1',
      'set net:timeout 15',
      'set cmd:fail-exit yes',
      `open -u anonymous,anonymous@ -p ${p.port} ${p.host}`,
      `get tls-offered.bin -o ${out}`,
    ].join('; ')
    const started = Date.now()
    const r = await runProcess('lftp', ['--norc', '-d', '-c', script], { timeoutMs: 40_000 })
    const seconds = (Date.now() - started) / 1000
    t.equal(r.code, 0, `lftp exited 0 (timed out: ${r.timedOut}); its trace:\n${r.stderr.slice(-3000)}`)
    t.ok(seconds <= 20, `within 20 s (${seconds.toFixed(1)} s)`)
    t.equal(r.code === 0 ? await sha256File(out) : null, file.sha256, 'the file arrives with equal sha256')
    t.match(r.stderr, /^---> AUTH TLS\r?\n<--- 502 /m, 'lftp asked for TLS (AUTH TLS) and got 502 at once, then went on in clear')
    t.notMatch(r.stderr, /^<--- 234/m, 'no 234 (TLS accepted) ever reached lftp')
    t.notMatch(r.stderr, /^---> PROT/m, 'lftp never asked for a protected data channel')
  })

  await t.test('AUTH TLS and AUTH SSL before login, PBSZ and PROT after it, get 502 at once; the session goes on in clear', async (t) => {
    const refusedBefore = await metricValue(p, 'ftp_proxy_commands_refused_total', { reason: 'tls' })
    const c = await RawFtp.connect(p.host, p.port)
    t.teardown(() => c.close())
    t.equal((await c.reply())?.code, 220, 'greeting')
    // A failure (no reply: the server is waiting for a TLS handshake) is a code 0, not a throw.
    const send = (line: string): Promise<{ code: number; text: string }> =>
      c.cmd(line).catch((err: Error) => ({ code: 0, text: err.message }))
    const refused = async (line: string): Promise<void> => {
      const started = Date.now()
      const r = await send(line)
      t.equal(r.code, 502, `${line}: 502 (${r.text})`)
      t.ok(Date.now() - started < 2000, `${line}: answered at once (${Date.now() - started} ms)`)
    }
    // Where clients send it: right after the greeting, before USER.
    await refused('AUTH TLS')
    await refused('AUTH SSL')
    // vsftpd would have answered AUTH TLS with 234 and then read only TLS: a login in clear
    // proves the proxy kept the command to itself.
    let login = await send('USER anonymous')
    if (login.code === 331) login = await send('PASS anonymous@')
    t.equal(login.code, 230, `a login in clear works (${login.text})`)
    await refused('PBSZ 0')
    await refused('PROT P')
    t.equal(
      (await metricValue(p, 'ftp_proxy_commands_refused_total', { reason: 'tls' })) - refusedBefore,
      4,
      'ftp_proxy_commands_refused_total{reason="tls"} counts the four refusals',
    )
    t.equal((await send('NOOP')).code, 200, 'NOOP in clear: 200')
    await send('QUIT')
  })
})

t.test('AUTH, PBSZ and PROT never reach the server (a scripted server records every command)', async (t) => {
  const file = Buffer.alloc(100_000, 3)
  const server = await startFaultServer({
    port: 27471,
    files: { 'f.bin': file },
    // What a TLS-capable server says to AUTH TLS: the proxy must never see it.
    onCommand: (cmd, s) => (cmd.verb === 'AUTH' ? s.write('234 Proceed with negotiation.') : 'default'),
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '27472-27479'])
  t.teardown(() => p.close())
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  for (const line of ['AUTH TLS', 'AUTH SSL', 'auth tls', 'PBSZ 0', 'PROT P', 'PROT C']) {
    const r = await c.cmd(line).catch((err: Error) => ({ code: 0, text: err.message }))
    t.equal(r.code, 502, `${line}: 502 from the proxy (${r.text})`)
  }
  const leaked = server.commands.filter((l) => /^(AUTH|PBSZ|PROT)\b/i.test(l))
  t.same(leaked, [], 'the server received none of them')
  t.equal((await c.cmd('QUIT').catch(() => ({ code: 0 }))).code, 221, 'QUIT')
  await freshTransfer(t, p, 'f.bin', file, 'a transfer afterwards')
})
