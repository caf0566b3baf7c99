// The compatibility matrix, end to end: three real servers, each advertising the unreachable
// 127.0.0.99 like PRODFTP, behind the proxy, by five real clients in every data mode each client
// has (PASV, EPSV, PORT, EPRT). Each cell is a RETR (3 MiB of random bytes, sha256 equal) and,
// where the client can upload, a STOR (sha256 of the stored file equal). Clients fall back
// silently (EPSV to PASV, EPRT to PORT), so each cell also checks, from the proxy's debug log
// (the `command` lines of that cell's sessions), which data command the client really sent.
// The printed table is docs/compatibility.md's.
//
// Some clients pick EPSV/EPRT only on an IPv6 control connection (wget, python ftplib, lftp's
// EPRT): those cells dial the proxy's [::1] listener, and the proxy talks IPv4 to the server.
// Ports: servers 25000-25289, proxy passive pool 25300-25349; client data ports for PORT/EPRT
// come from curl -P's range 25400-25449 and lftp's ftp:port-range 25450-25499, the rest
// (wget, ftplib) bind port 0.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { startProxy, type TestProxy } from '../fixtures/proxy.js'
import { basicFtpDownload, basicFtpUpload, ftpUrl, type ClientResult, type FtpLogin } from './lib/clients.js'
import { runProcess } from './lib/proc.js'
import { makeRandomFile, sha256File, startProftpd, startPureFtpd, startVsftpd, type FtpServer } from './lib/servers.js'

t.setTimeout(240_000)

type Mode = 'PASV' | 'EPSV' | 'PORT' | 'EPRT'
type Op = 'RETR' | 'STOR'
type Family = 'IPv4' | 'IPv6'
const MODES: readonly Mode[] = ['PASV', 'EPSV', 'PORT', 'EPRT']
// Every command that sets up a data connection, so a fallback to any of them shows.
const DATA_VERBS = new Set(['PASV', 'EPSV', 'PORT', 'EPRT', 'LPSV', 'LPRT', 'SPSV'])
const UNREACHABLE = '127.0.0.99'
const SIZE = 3 * 1024 * 1024
const CLIENT_TIMEOUT_MS = 30_000
const CLIENT_TIMEOUT_S = '10'

interface Transfer {
  login: FtpLogin
  remote: string
  /** Where a RETR writes, or what a STOR sends. */
  local: string
}

interface ModeSpec {
  family: Family
  /** How the client is put in this mode, for the table. */
  how: string
}

interface ClientDef {
  name: string
  modes: Partial<Record<Mode, ModeSpec>>
  /** Modes the client does not have, with the reason (they are not cells). */
  missing: Partial<Record<Mode, string>>
  /** null when the client can upload, else why not. */
  noUpload: string | null
  run(mode: Mode, op: Op, x: Transfer): Promise<ClientResult>
}

function sent(trace: string, pattern: RegExp): string[] {
  const out: string[] = []
  for (const line of trace.split('\n')) {
    const m = pattern.exec(line.replace(/\r$/, ''))
    if (m?.[1] !== undefined) out.push(m[1])
  }
  return out
}

// ---- the clients, each in each of its modes ----

const CURL_MODE: Record<Mode, string[]> = {
  PASV: ['--disable-epsv', '--no-ftp-skip-pasv-ip'],
  EPSV: ['--no-ftp-skip-pasv-ip'],
  PORT: ['--ftp-port', '127.0.0.1:25400-25449', '--disable-eprt'],
  EPRT: ['--ftp-port', '127.0.0.1:25400-25449'],
}

const curl: ClientDef = {
  name: 'curl 7.88',
  modes: {
    PASV: { family: 'IPv4', how: '`--disable-epsv --no-ftp-skip-pasv-ip`' },
    EPSV: { family: 'IPv4', how: 'default (EPSV first), `--no-ftp-skip-pasv-ip`' },
    PORT: { family: 'IPv4', how: '`-P 127.0.0.1 --disable-eprt`' },
    EPRT: { family: 'IPv4', how: '`-P 127.0.0.1` (EPRT first)' },
  },
  missing: {},
  noUpload: null,
  async run(mode, op, x) {
    const url = ftpUrl(x.login, x.remote)
    const io = op === 'RETR' ? ['-o', x.local] : ['-T', x.local]
    const args = ['-q', '-sS', '-v', '--connect-timeout', CLIENT_TIMEOUT_S, '--max-time', '30', ...CURL_MODE[mode], ...io, url]
    const res = await runProcess('curl', args, { timeoutMs: CLIENT_TIMEOUT_MS })
    return { ...res, sent: sent(res.stderr, /^> (.+)$/) }
  },
}

const wget: ClientDef = {
  name: 'wget 1.21',
  modes: {
    PASV: { family: 'IPv4', how: 'default (passive)' },
    EPSV: { family: 'IPv6', how: 'default, over IPv6 (`ftp://[::1]:PORT/`)' },
    PORT: { family: 'IPv4', how: '`--no-passive-ftp`' },
    EPRT: { family: 'IPv6', how: '`--no-passive-ftp`, over IPv6' },
  },
  missing: {},
  noUpload: 'wget only downloads (it has no FTP upload)',
  async run(mode, op, x) {
    if (op !== 'RETR') throw new Error('wget cannot upload')
    // wget sends PASV/PORT on an IPv4 control connection and EPSV/EPRT (then LPSV/LPRT) on an
    // IPv6 one; --no-config/--no-hsts: nothing from the home dir. -d: the "--> CMD" trace.
    const active = mode === 'PORT' || mode === 'EPRT' ? ['--no-passive-ftp'] : []
    const args = ['--no-config', '--no-hsts', '-d', '--tries=1', `--timeout=${CLIENT_TIMEOUT_S}`, ...active, '-O', x.local, ftpUrl(x.login, x.remote)]
    const res = await runProcess('wget', args, { timeoutMs: CLIENT_TIMEOUT_MS })
    return { ...res, sent: sent(res.stderr, /^--> (.+)$/) }
  },
}

const FTPLIB_SCRIPT = fileURLToPath(new URL('./lib/ftplib_modes.py', import.meta.url))

const ftplib: ClientDef = {
  name: 'python3 ftplib',
  modes: {
    PASV: { family: 'IPv4', how: '`set_pasv(True)`, `trust_server_pasv_ipv4_address = True`' },
    EPSV: { family: 'IPv6', how: '`set_pasv(True)` over IPv6 (ftplib sends EPSV only then)' },
    PORT: { family: 'IPv4', how: '`set_pasv(False)`' },
    EPRT: { family: 'IPv6', how: '`set_pasv(False)` over IPv6 (ftplib sends EPRT only then)' },
  },
  missing: {},
  noUpload: null,
  async run(mode, op, x) {
    const request = {
      ...x.login,
      mode: mode.toLowerCase(),
      op: op === 'RETR' ? 'download' : 'upload',
      remote: x.remote,
      local: x.local,
      timeout: Number(CLIENT_TIMEOUT_S),
    }
    const res = await runProcess('python3', [FTPLIB_SCRIPT, JSON.stringify(request)], { timeoutMs: CLIENT_TIMEOUT_MS })
    return { ...res, sent: sent(res.stderr, /^\*cmd\* '(.+)'$/) }
  },
}

const basicFtp: ClientDef = {
  name: 'basic-ftp 6',
  modes: {
    PASV: { family: 'IPv4', how: '`prepareTransfer = enterPassiveModeIPv4`' },
    EPSV: { family: 'IPv4', how: 'default (EPSV first)' },
  },
  missing: {
    PORT: 'basic-ftp has no active mode',
    EPRT: 'basic-ftp has no active mode',
  },
  noUpload: null,
  async run(mode, op, x) {
    const opts = { ...x.login, mode: mode === 'PASV' ? ('pasv' as const) : ('default' as const), timeoutMs: CLIENT_TIMEOUT_MS }
    return op === 'RETR'
      ? basicFtpDownload({ ...opts, remote: x.remote, out: x.local })
      : basicFtpUpload({ ...opts, remote: x.remote, local: x.local })
  },
}

const lftpQuote = (s: string): string => `"${s.replace(/["\\]/g, '\\$&')}"`

const lftp: ClientDef = {
  name: 'lftp 4.9',
  modes: {
    PASV: { family: 'IPv4', how: '`ftp:passive-mode on`, `ftp:prefer-epsv no`' },
    EPSV: { family: 'IPv4', how: '`ftp:passive-mode on`, `ftp:prefer-epsv yes`' },
    PORT: { family: 'IPv4', how: '`ftp:passive-mode off`' },
    EPRT: { family: 'IPv6', how: '`ftp:passive-mode off` over IPv6 (lftp sends EPRT only then)' },
  },
  missing: {},
  noUpload: null,
  async run(mode, op, x) {
    const passive = mode === 'PASV' || mode === 'EPSV'
    const host = x.login.host.includes(':') ? `[${x.login.host}]` : x.login.host
    const script = [
      'set ftp:ssl-allow no',
      `set ftp:passive-mode ${passive ? 'on' : 'off'}`,
      `set ftp:prefer-epsv ${mode === 'EPSV' ? 'yes' : 'no'}`,
      'set ftp:ignore-pasv-address no',
      'set ftp:port-range 25450-25499',
      'set net:max-retries 1',
      `set net:timeout ${CLIENT_TIMEOUT_S}`,
      'set xfer:clobber on',
      'set cmd:fail-exit yes',
      `open -u ${lftpQuote(`${x.login.user},${x.login.password}`)} ftp://${host}:${x.login.port}`,
      op === 'RETR' ? `get ${lftpQuote(x.remote)} -o ${lftpQuote(x.local)}` : `put ${lftpQuote(x.local)} -o ${lftpQuote(x.remote)}`,
    ].join('; ')
    const res = await runProcess('lftp', ['--norc', '-d', '-c', script], { timeoutMs: CLIENT_TIMEOUT_MS })
    return { ...res, sent: sent(res.stderr, /^---> (.+)$/) }
  },
}

const CLIENTS: readonly ClientDef[] = [curl, wget, ftplib, basicFtp, lftp]

// ---- the servers ----

interface ServerDef {
  name: string
  start: () => Promise<FtpServer>
}

const SERVERS: readonly ServerDef[] = [
  { name: 'vsftpd 3.0.3', start: () => startVsftpd({ port: 25000, pasvMin: 25010, pasvMax: 25049, pasvAddress: UNREACHABLE }) },
  { name: 'ProFTPD 1.3.8', start: () => startProftpd({ port: 25100, pasvMin: 25110, pasvMax: 25149, masqueradeAddress: UNREACHABLE }) },
  // pure-ftpd lets in only half its passive range's size in clients.
  { name: 'pure-ftpd 1.0.50', start: () => startPureFtpd({ port: 25200, pasvMin: 25210, pasvMax: 25289, forcedPassiveIp: UNREACHABLE }) },
]

// ---- running the cells ----

interface Outcome {
  ok: boolean
  /** The data commands the proxy saw in this transfer's sessions, in order. */
  used: string[]
  /** Replies of the commands the proxy refused itself, e.g. "504 EPRT refused: ...". */
  refused: string[]
  seconds: number
}

/** Each transfer's outcome, by key(client, mode, server, op). */
const results = new Map<string, Outcome>()
const key = (client: string, mode: Mode, server: string, op: Op): string => `${client}|${mode}|${server}|${op}`

const work = await mkdtemp(join(tmpdir(), 'fpp-matrix-'))
t.teardown(() => rm(work, { recursive: true, force: true }))
const upload = await makeRandomFile(work, 'up.bin', SIZE + 12_345)

/** From the proxy's log lines since `from`: the data commands clients sent, and the refusals. */
function proxySaw(p: TestProxy, from: number): { used: string[]; refused: string[] } {
  const used: string[] = []
  const refused: string[] = []
  for (const line of p.logs.slice(from)) {
    if (line['msg'] === 'command refused') refused.push(String(line['reply']))
    if (line['msg'] !== 'command') continue
    const verb = (line['cmd'] as { verb?: unknown } | undefined)?.verb
    if (typeof verb === 'string' && DATA_VERBS.has(verb.toUpperCase())) used.push(verb.toUpperCase())
  }
  return { used, refused }
}

function tail(s: string, n = 1500): string {
  return s.length > n ? `...${s.slice(-n)}` : s
}

async function cell(
  t: Test,
  ctx: { server: ServerDef; ftp: FtpServer; proxy: TestProxy; v6: FtpLogin; v4: FtpLogin; sha256: string },
  client: ClientDef,
  mode: Mode,
  op: Op,
): Promise<void> {
  const spec = client.modes[mode]!
  const login = spec.family === 'IPv6' ? ctx.v6 : ctx.v4
  const tag = `${client.name.split(' ')[0]}-${mode}`.replace(/[^a-z0-9-]/gi, '_')
  const x: Transfer =
    op === 'RETR'
      ? { login, remote: 'down.bin', local: join(work, `${tag}.bin`) }
      : { login, remote: `${ctx.ftp.uploadDir}/${tag}.bin`, local: upload.path }
  const from = ctx.proxy.logs.length
  const started = performance.now()
  const res = await client.run(mode, op, x)
  const seconds = (performance.now() - started) / 1000
  // Sessions end after the client exits; their command lines are all logged by then.
  const { used, refused } = proxySaw(ctx.proxy, from)
  const diag = { code: res.code, timedOut: res.timedOut, clientSent: res.sent, proxyRefused: refused, stderr: tail(res.stderr) }
  let ok = t.equal(res.code, 0, `${op} exits 0`, diag)
  if (op === 'RETR') {
    ok = t.equal(res.code === 0 ? await sha256File(x.local) : null, ctx.sha256, 'downloaded sha256 equal') && ok
    await rm(x.local, { force: true })
  } else {
    const stored = join(ctx.ftp.root, x.remote)
    const digest = await sha256File(stored).catch(() => null)
    ok = t.equal(digest, upload.sha256, 'stored sha256 equal') && ok
  }
  ok = t.ok(used.length > 0, 'the proxy saw a data command', { used }) && ok
  ok = t.same([...new Set(used)], [mode], `the proxy saw ${mode} and nothing else (saw ${used.join(',') || 'none'})`, { used, clientSent: res.sent }) && ok
  results.set(key(client.name, mode, ctx.server.name, op), { ok, used, refused, seconds })
}

for (const server of SERVERS) {
  await t.test(server.name, async (t) => {
    const ftp = await server.start()
    t.teardown(() => ftp.stop())
    const { sha256 } = await makeRandomFile(ftp.root, 'down.bin', SIZE)
    // The fixture listens on 127.0.0.1:0; a second listener on [::1] for the IPv6 cells.
    const proxy = await startProxy(['--upstream', `127.0.0.1:${ftp.port}`, '--passive-ports', '25300-25349', '--listen', '[::1]:0'], 'debug')
    t.teardown(() => proxy.close())
    const v6addr = proxy.proxy.addresses().find((a) => a.host.includes(':'))
    if (v6addr === undefined) throw new Error('the proxy has no IPv6 listener')
    const creds = { user: ftp.user, password: ftp.password }
    const ctx = { server, ftp, proxy, sha256, v4: { host: proxy.host, port: proxy.port, ...creds }, v6: { host: v6addr.host, port: v6addr.port, ...creds } }
    for (const client of CLIENTS) {
      for (const mode of MODES) {
        if (client.modes[mode] === undefined) continue
        const ops: Op[] = client.noUpload === null ? ['RETR', 'STOR'] : ['RETR']
        for (const op of ops) {
          await t.test(`${client.name} ${mode} ${op}`, (t) => cell(t, ctx, client, mode, op))
        }
      }
    }
  })
}

// ---- the table ----

function mark(o: Outcome | undefined): string {
  if (o === undefined) return '—'
  const used = [...new Set(o.used)].join('→') || 'none'
  if (o.ok) return `✓ ${used}`
  const why = o.refused.length > 0 ? `, proxy: ${o.refused.map((r) => r.split(' ')[0]).join(',')}` : ''
  return `✗ (${used}${why})`
}

function table(): string {
  const head = ['client', 'mode', 'how', ...SERVERS.map((s) => `${s.name} RETR / STOR`)]
  const rows: string[][] = []
  for (const client of CLIENTS) {
    for (const mode of MODES) {
      const spec = client.modes[mode]
      if (spec === undefined) continue
      const cells = SERVERS.map((s) => {
        const retr = mark(results.get(key(client.name, mode, s.name, 'RETR')))
        const stor = client.noUpload === null ? mark(results.get(key(client.name, mode, s.name, 'STOR'))) : 'n/a'
        return `${retr} / ${stor}`
      })
      rows.push([client.name, `${mode}${spec.family === 'IPv6' ? ' (IPv6)' : ''}`, spec.how, ...cells])
    }
  }
  const line = (r: string[]): string => `| ${r.join(' | ')} |`
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n')
}

function notCells(): string {
  const out: string[] = []
  for (const client of CLIENTS) {
    for (const mode of MODES) {
      const why = client.missing[mode]
      if (why !== undefined) out.push(`- ${client.name} ${mode}: ${why}`)
    }
    if (client.noUpload !== null) out.push(`- ${client.name} STOR (every mode): ${client.noUpload}`)
  }
  return out.join('\n')
}

t.test('every mode of every client is a cell or has a reason', async (t) => {
  for (const client of CLIENTS) {
    for (const mode of MODES) {
      t.ok((client.modes[mode] === undefined) !== (client.missing[mode] === undefined), `${client.name} ${mode}`)
    }
  }
})

t.teardown(() => {
  const total = [...results.values()]
  const failed = total.filter((o) => !o.ok).length
  const seconds = total.reduce((s, o) => s + o.seconds, 0)
  t.comment(`compatibility matrix (${total.length} transfers, ${failed} failed, ${seconds.toFixed(1)} s in clients)\n${table()}\n\nnot cells:\n${notCells()}`)
})
