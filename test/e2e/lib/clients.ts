// Real FTP clients for the end-to-end tests. The external ones run as child processes with a
// deadline (killed by PID); basic-ftp runs in this process. Every helper resolves to a
// ClientResult, whether the transfer worked or not, and throws only when the client program
// itself is missing. `sent` lists the FTP commands the client sent (from its own debug trace),
// so a test can check that EPSV or PASV really was used.
import { Client, enterPassiveModeIPv4 } from 'basic-ftp'
import { fileURLToPath } from 'node:url'
import { sha256File } from './files.js'
import { runProcess } from './proc.js'
import type { ProcessResult } from './proc.js'

export interface ClientResult extends ProcessResult {
  /** FTP commands as the client sent them, in order (each client masks PASS its own way). */
  sent: string[];
}

export interface DownloadResult extends ClientResult {
  /** sha256 of the downloaded file, or null when the client failed. */
  sha256: string | null;
}

/** Where to log in; `remote` paths are relative to the login directory. */
export interface FtpLogin {
  host: string;
  port: number;
  user: string;
  password: string;
}

const DEFAULT_TIMEOUT_MS = 30_000
// Each client's own connect/read timeout, shorter than the kill deadline so it can say why.
const CLIENT_TIMEOUT_S = 10

/** ftp:// URL with the credentials and each path segment percent-encoded. */
export function ftpUrl(login: FtpLogin, remote = ''): string {
  const auth = `${encodeURIComponent(login.user)}:${encodeURIComponent(login.password)}`
  const host = login.host.includes(':') ? `[${login.host}]` : login.host
  const path = remote.split('/').map(encodeURIComponent).join('/')
  return `ftp://${auth}@${host}:${login.port}/${path}`
}

function sentCommands(trace: string, pattern: RegExp): string[] {
  const sent: string[] = []
  for (const line of trace.split('\n')) {
    const m = pattern.exec(line.replace(/\r$/, ''))
    if (m?.[1] !== undefined) sent.push(m[1])
  }
  return sent
}

async function withDigest(result: ClientResult, out: string): Promise<DownloadResult> {
  return { ...result, sha256: result.code === 0 ? await sha256File(out) : null }
}

// ---- curl 7.88 ----

/**
 * - 'pasv': PASV only, and connect to the address the 227 names (as PRODFTP's client did).
 * - 'epsv': EPSV first; should curl fall back to PASV, it too honours the 227 address, so a
 *   fallback cannot hide an EPSV failure (check `sent` for EPSV and no PASV).
 * - 'default': curl as shipped: EPSV first, then PASV with the 227 address ignored.
 */
export type CurlMode = 'pasv' | 'epsv' | 'default'

const CURL_MODE_ARGS: Record<CurlMode, string[]> = {
  pasv: ['--disable-epsv', '--no-ftp-skip-pasv-ip'],
  epsv: ['--no-ftp-skip-pasv-ip'],
  default: [],
}

export interface CurlOptions {
  url: string;
  mode: CurlMode;
  timeoutMs?: number;
  /** More curl arguments (FTPS: --ssl-reqd, --cacert, --tls-max). */
  extra?: string[];
}

async function curl(opts: CurlOptions, extra: string[]): Promise<ClientResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  // -q first: ignore any ~/.curlrc. -v: the trace that `sent` is read from.
  const limits = ['--connect-timeout', String(CLIENT_TIMEOUT_S), '--max-time', String(Math.ceil(timeoutMs / 1000))]
  const args = ['-q', '-sS', '-v', ...limits, ...CURL_MODE_ARGS[opts.mode], ...(opts.extra ?? []), ...extra, opts.url]
  const res = await runProcess('curl', args, { timeoutMs: timeoutMs + 2000 })
  return { ...res, sent: sentCommands(res.stderr, /^> (.+)$/) }
}

export async function curlDownload(opts: CurlOptions & { out: string }): Promise<DownloadResult> {
  return withDigest(await curl(opts, ['-o', opts.out]), opts.out)
}

export function curlUpload(opts: CurlOptions & { local: string }): Promise<ClientResult> {
  return curl(opts, ['-T', opts.local])
}

/** LIST of the directory the URL names (end it with "/"); the listing is in stdout. */
export function curlList(opts: CurlOptions): Promise<ClientResult> {
  return curl(opts, [])
}

// ---- wget 1.21: PASV only, honours the 227 address ----

export async function wgetDownload(opts: { url: string; out: string; timeoutMs?: number }): Promise<DownloadResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  // --no-config/--no-hsts: no rc files or state from the home dir. -d: the "--> CMD" trace.
  const args = ['--no-config', '--no-hsts', '-d', '--tries=1', `--timeout=${CLIENT_TIMEOUT_S}`]
  args.push('-O', opts.out, opts.url)
  const res = await runProcess('wget', args, { timeoutMs })
  return withDigest({ ...res, sent: sentCommands(res.stderr, /^--> (.+)$/) }, opts.out)
}

// ---- python3 ftplib ----

/**
 * - 'pasv': PASV with `trust_server_pasv_ipv4_address = True` (dials the 227 address).
 * - 'epsv': EPSV only: ftplib sends EPSV when `ftp.af` is AF_INET6, and dials the control
 *   peer with the 229 port (see ftplib_client.py).
 * - 'port': active mode, `set_pasv(False)`: PORT, ftplib accepts the data connection.
 */
export type FtplibMode = 'pasv' | 'epsv' | 'port'

export interface FtplibOptions extends FtpLogin {
  mode: FtplibMode;
  timeoutMs?: number;
  /** FTPS: ftplib.FTP_TLS trusting `cafile`, then PROT P (`prot`, default 'P') before the transfer. */
  tls?: { cafile: string; prot?: 'P' | 'C' };
  /** How many times the operation runs in the one session (default 1). */
  times?: number;
}

const FTPLIB_SCRIPT = fileURLToPath(new URL('./ftplib_client.py', import.meta.url))

async function ftplib(
  opts: FtplibOptions,
  op: 'download' | 'upload' | 'list',
  remote: string,
  local: string,
): Promise<ClientResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const request = {
    host: opts.host,
    port: opts.port,
    user: opts.user,
    password: opts.password,
    mode: opts.mode,
    op,
    remote,
    local,
    timeout: CLIENT_TIMEOUT_S,
    tls: opts.tls ?? null,
    times: opts.times ?? 1,
  }
  const res = await runProcess('python3', [FTPLIB_SCRIPT, JSON.stringify(request)], { timeoutMs })
  return { ...res, sent: sentCommands(res.stderr, /^\*cmd\* '(.+)'$/) }
}

export async function ftplibDownload(opts: FtplibOptions & { remote: string; out: string }): Promise<DownloadResult> {
  return withDigest(await ftplib(opts, 'download', opts.remote, opts.out), opts.out)
}

export function ftplibUpload(opts: FtplibOptions & { local: string; remote: string }): Promise<ClientResult> {
  return ftplib(opts, 'upload', opts.remote, opts.local)
}

/** LIST of `remote` (the login directory when omitted); the listing is in stdout. */
export function ftplibList(opts: FtplibOptions & { remote?: string }): Promise<ClientResult> {
  return ftplib(opts, 'list', opts.remote ?? '', '')
}

// ---- basic-ftp 6 (in process) ----

/**
 * - 'pasv': `prepareTransfer = enterPassiveModeIPv4`: PASV, dials the 227 address.
 * - 'default': basic-ftp as shipped: EPSV first, then PASV, refusing a 227 host that is not
 *   the control host.
 */
export type BasicFtpMode = 'pasv' | 'default'

export interface BasicFtpOptions extends FtpLogin {
  mode: BasicFtpMode;
  timeoutMs?: number;
  /** FTPS (`secure: true`, then PBSZ 0 and PROT P), trusting the PEM CA in `ca`. */
  tls?: { ca: string };
  /** How many times the operation runs on the one client (default 1). */
  times?: number;
}

/**
 * Runs `work` on a logged-in client. Failures become code 1 with the error in stderr; past
 * the deadline the client is closed, which fails the pending operation (code null, timedOut).
 */
async function basicFtp(opts: BasicFtpOptions, work: (client: Client) => Promise<string>): Promise<ClientResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const client = new Client(CLIENT_TIMEOUT_S * 1000)
  const trace: string[] = []
  // basic-ftp logs "> CMD" / "< reply" through this method (PASS masked).
  client.ftp.log = (message: string) => {
    trace.push(message)
  }
  if (opts.mode === 'pasv') client.prepareTransfer = enterPassiveModeIPv4
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    client.close()
  }, timeoutMs)
  let result: ProcessResult
  try {
    await client.access({
      host: opts.host,
      port: opts.port,
      user: opts.user,
      password: opts.password,
      ...(opts.tls === undefined ? {} : { secure: true, secureOptions: { ca: opts.tls.ca } }),
    })
    const stdout = await work(client)
    result = { code: 0, stdout, stderr: trace.join('\n'), timedOut: false }
  } catch (err) {
    result = { code: timedOut ? null : 1, stdout: '', stderr: [...trace, (err as Error).message].join('\n'), timedOut }
  } finally {
    clearTimeout(timer)
    client.close()
  }
  return { ...result, sent: sentCommands(trace.join('\n'), /^> (.+)$/) }
}

export async function basicFtpDownload(opts: BasicFtpOptions & { remote: string; out: string }): Promise<DownloadResult> {
  const res = await basicFtp(opts, async (client) => {
    for (let i = opts.times ?? 1; i > 0; i--) await client.downloadTo(opts.out, opts.remote)
    return ''
  })
  return withDigest(res, opts.out)
}

export function basicFtpUpload(opts: BasicFtpOptions & { local: string; remote: string }): Promise<ClientResult> {
  return basicFtp(opts, async (client) => {
    await client.uploadFrom(opts.local, opts.remote)
    return ''
  })
}

/** LIST of `remote` (the login directory when omitted); stdout has one entry name per line. */
export function basicFtpList(opts: BasicFtpOptions & { remote?: string }): Promise<ClientResult> {
  return basicFtp(opts, async (client) => {
    const entries = await client.list(opts.remote)
    return entries.map((e) => `${e.name}\n`).join('')
  })
}

// ---- lftp 4.9 ----

/**
 * - 'pasv': `ftp:prefer-epsv no`, `ftp:ignore-pasv-address no`. lftp still "fixes" a 227 that
 *   names 127.0.0.99 to the control peer (even with `ftp:fix-pasv-address no`), so on loopback
 *   it does not fail against a wrong 227; shared/ENVIRONMENT.md saw it fail only against an
 *   address inside a network namespace.
 * - 'epsv': `ftp:prefer-epsv yes`.
 */
export type LftpMode = 'pasv' | 'epsv'

export interface LftpOptions extends FtpLogin {
  mode: LftpMode;
  timeoutMs?: number;
  /** FTPS: `ftp:ssl-force yes`, `ftp:ssl-protect-data yes`, trusting the PEM CA file `cafile`. */
  tls?: { cafile: string };
  /** How many times the operation runs in the one session (default 1). */
  times?: number;
}

/** An argument for lftp's command parser. */
function lftpQuote(s: string): string {
  return `"${s.replace(/["\\]/g, '\\$&')}"`
}

async function lftp(opts: LftpOptions, command: string): Promise<ClientResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const script = [
    // Plain FTP: no AUTH TLS attempt first. FTPS: TLS or nothing, on control and data.
    ...(opts.tls === undefined
      ? ['set ftp:ssl-allow no']
      : ['set ftp:ssl-force yes', 'set ftp:ssl-protect-data yes', `set ssl:ca-file ${lftpQuote(opts.tls.cafile)}`, 'set ssl:verify-certificate yes']),
    'set ftp:passive-mode yes',
    `set ftp:prefer-epsv ${opts.mode === 'epsv' ? 'yes' : 'no'}`,
    'set ftp:ignore-pasv-address no',
    'set net:max-retries 1',
    `set net:timeout ${CLIENT_TIMEOUT_S}`,
    'set xfer:clobber on',
    // Stop at the first failing command, and exit with its status.
    'set cmd:fail-exit yes',
    `open -u ${lftpQuote(`${opts.user},${opts.password}`)} -p ${opts.port} ${opts.host}`,
    command,
  ].join('; ')
  // --norc: no rc files from the home dir. -d: the "---> CMD" trace on stderr.
  const res = await runProcess('lftp', ['--norc', '-d', '-c', script], { timeoutMs })
  return { ...res, sent: sentCommands(res.stderr, /^---> (.+)$/) }
}

export async function lftpDownload(opts: LftpOptions & { remote: string; out: string }): Promise<DownloadResult> {
  const get = `get ${lftpQuote(opts.remote)} -o ${lftpQuote(opts.out)}`
  return withDigest(await lftp(opts, Array.from({ length: opts.times ?? 1 }, () => get).join('; ')), opts.out)
}

export function lftpUpload(opts: LftpOptions & { local: string; remote: string }): Promise<ClientResult> {
  return lftp(opts, `put ${lftpQuote(opts.local)} -o ${lftpQuote(opts.remote)}`)
}

/** LIST of `remote` (the login directory when omitted); the listing is in stdout. */
export function lftpList(opts: LftpOptions & { remote?: string }): Promise<ClientResult> {
  return lftp(opts, opts.remote === undefined ? 'ls' : `ls ${lftpQuote(opts.remote)}`)
}
