// Real FTP servers for the end-to-end tests: each runs in the foreground as this process's
// child, on 127.0.0.1, from its own temp dir. The "wrong passive address" options reproduce
// PRODFTP: the 227 names 127.0.0.99, where nothing listens, so a client that honours it is
// refused at once (see shared/ENVIRONMENT.md).
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { connect } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { findBinary } from './bin.js'
import { runProcess } from './proc.js'

export { makeRandomFile, sha256File } from './files.js'

export interface FtpServer {
  readonly kind: 'vsftpd' | 'proftpd' | 'pure-ftpd';
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Directory on disk that the login sees as "/" (the anonymous root or the user's home). */
  readonly root: string;
  /** Name of a subdirectory of `root` that the login may write to. */
  readonly uploadDir: string;
  readonly user: string;
  readonly password: string;
  readonly pid: number;
  /** Kills the server (and its session processes), waits for it to exit, removes its temp dir. */
  stop(): Promise<void>;
}

/** A test file's own fixed ports, so that parallel test files never collide. */
export interface ServerPorts {
  /** Control port. */
  port: number;
  /** Passive data port range, inclusive; keep it below 32768 (the ephemeral range). */
  pasvMin: number;
  pasvMax: number;
}

const HOST = '127.0.0.1'
const UPLOAD_DIR = 'upload'
// Unprivileged owner of the virtual users' files (Debian's nobody/nogroup).
const NOBODY_UID = 65534
const NOBODY_GID = 65534
const VIRTUAL_USER = 'tester'
const VIRTUAL_PASSWORD = 'e2e-tester-pass'
const START_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 5_000

/**
 * vsftpd 3.0.3, anonymous only (no password asked), uploads allowed into `upload/`.
 * `pasvAddress` sets pasv_address with pasv_addr_resolve=NO; without it vsftpd advertises the
 * control connection's local address. max_per_ip and max_clients are raised: despite its man page
 * ("0, unlimited"), this vsftpd refuses the 51st connection from one address with "421 There are
 * too many connections from your internet address" (checked here), and behind the proxy every
 * session comes from one address; a session's process may outlive its QUIT for a moment.
 */
/** vsftpd's FTPS settings: its certificate, and whether anonymous sessions must use TLS on control and data. */
export interface VsftpdTls {
  readonly cert: string
  readonly key: string
  /** force_anon_logins_ssl and force_anon_data_ssl: a clear session or data connection is refused. */
  readonly required: boolean
  /** implicit_ssl: TLS from the first byte of the control connection (FTPS on its own port, as on 990). */
  readonly implicit?: boolean
  /** require_cert and validate_cert against this CA file: a client (the proxy) must show a certificate it signed. */
  readonly clientCa?: string
}

export function startVsftpd(opts: ServerPorts & { pasvAddress?: string; tls?: VsftpdTls }): Promise<FtpServer> {
  return startIn('vsftpd', opts.port, async (tmp) => {
    // vsftpd refuses a writable chroot root: root-owned 755 with a world-writable upload/.
    const root = join(tmp, 'root')
    const empty = join(tmp, 'empty')
    await mkdir(join(root, UPLOAD_DIR), { recursive: true })
    await mkdir(empty)
    await chmod(root, 0o755)
    await chmod(join(root, UPLOAD_DIR), 0o777)
    const conf = [
      'listen=YES',
      'listen_ipv6=NO',
      'background=NO',
      `listen_address=${HOST}`,
      `listen_port=${opts.port}`,
      // 3.0.3's seccomp filter kills each session process here (curl: "response reading failed").
      'seccomp_sandbox=NO',
      'max_per_ip=1000',
      'max_clients=2000',
      `secure_chroot_dir=${empty}`,
      'anonymous_enable=YES',
      'local_enable=NO',
      'no_anon_password=YES',
      `anon_root=${root}`,
      // vsftpd changes into this user's home before anon_root. Debian has no "ftp" user unless
      // vsftpd's own package made it, and nobody's home is /nonexistent; daemon's is /usr/sbin.
      'ftp_username=daemon',
      'write_enable=YES',
      'anon_upload_enable=YES',
      'anon_mkdir_write_enable=YES',
      // Else a second STOR to one name, and APPE, get 553.
      'anon_other_write_enable=YES',
      // Else uploads are unreadable to anonymous RETR.
      'anon_umask=022',
      'pasv_enable=YES',
      `pasv_min_port=${opts.pasvMin}`,
      `pasv_max_port=${opts.pasvMax}`,
      ...(opts.pasvAddress === undefined ? [] : [`pasv_address=${opts.pasvAddress}`, 'pasv_addr_resolve=NO']),
      ...(opts.tls === undefined
        ? []
        : [
            'ssl_enable=YES',
            `rsa_cert_file=${opts.tls.cert}`,
            `rsa_private_key_file=${opts.tls.key}`,
            'allow_anon_ssl=YES',
            `force_anon_logins_ssl=${opts.tls.required ? 'YES' : 'NO'}`,
            `force_anon_data_ssl=${opts.tls.required ? 'YES' : 'NO'}`,
            // The default, said out loud: a data connection must resume the control session.
            'require_ssl_reuse=YES',
            ...(opts.tls.implicit === true ? ['implicit_ssl=YES'] : []),
            ...(opts.tls.clientCa === undefined ? [] : ['require_cert=YES', 'validate_cert=YES', `ca_certs_file=${opts.tls.clientCa}`]),
          ]),
    ]
    const confPath = join(tmp, 'vsftpd.conf')
    await writeFile(confPath, conf.join('\n') + '\n')
    return { bin: findBinary('vsftpd'), args: [confPath], root, user: 'anonymous', password: 'anonymous@', implicitTls: opts.tls?.implicit === true }
  })
}

/**
 * FTPS settings of ProFTPD (mod_tls) and pure-ftpd: the server's certificate and key (PEM files
 * readable by root: both servers load them before a session drops to the virtual user), and
 * whether TLS is required on the control and the data connections.
 */
export interface ServerTls {
  readonly cert: string
  readonly key: string
  /**
   * ProFTPD: TLSRequired on (clear USER and clear data refused); pure-ftpd: -Y 3 (clear sessions
   * refused, and RETR/STOR/LIST without PROT P get 521). false: TLS offered, not required
   * (TLSRequired off, -Y 1).
   */
  readonly required: boolean
}

/** ProFTPD's FTPS settings: ServerTls, and the protocols it accepts. */
export interface ProftpdTls extends ServerTls {
  /** TLSProtocol; default "TLSv1.2 TLSv1.3". */
  readonly protocols?: string
}

/**
 * ProFTPD 1.3.8 with one user from an AuthUserFile (SHA-512 crypt hash), chrooted to a
 * writable home. `masqueradeAddress` sets MasqueradeAddress. Its 227 ends with a period.
 * `tls` loads mod_tls (Debian's proftpd-mod-crypto) and turns on explicit FTPS (AUTH TLS) with
 * mod_tls's default TLSOptions: a data connection must resume the control connection's TLS
 * session (what NoSessionReuseRequired would turn off). Its TLS log is tls.log in the temp dir,
 * beside the home (`dirname(root)`), where mod_tls says why it refused a handshake.
 */
export function startProftpd(opts: ServerPorts & { masqueradeAddress?: string; tls?: ProftpdTls }): Promise<FtpServer> {
  return startIn('proftpd', opts.port, async (tmp) => {
    const bin = findBinary('proftpd')
    const home = await makeUserHome(tmp)
    const passwdPath = join(tmp, 'ftpd.passwd')
    const hash = await sha512Crypt(VIRTUAL_PASSWORD)
    // The /etc/passwd-format line ftpasswd would write, with the same openssl hash as pure-ftpd's.
    const entry = `${VIRTUAL_USER}:${hash}:${NOBODY_UID}:${NOBODY_GID}::${home}:/bin/false\n`
    await writeFile(passwdPath, entry, { mode: 0o600 })
    const conf = [
      'ServerType standalone',
      'ServerName "e2e"',
      `DefaultAddress ${HOST}`,
      'SocketBindTight on',
      'UseIPv6 off',
      `Port ${opts.port}`,
      `PassivePorts ${opts.pasvMin} ${opts.pasvMax}`,
      ...(opts.masqueradeAddress === undefined ? [] : [`MasqueradeAddress ${opts.masqueradeAddress}`]),
      // No User/Group: the master stays root, because a change of uid would clear the
      // parent-death signal that launch() sets. Sessions still run as the virtual user's uid.
      // Only the file: no PAM or /etc/passwd look-ups for the virtual user.
      'AuthOrder mod_auth_file.c',
      `AuthUserFile ${passwdPath}`,
      'RequireValidShell off',
      'DelayTable none',
      'WtmpLog off',
      'UseReverseDNS off',
      `PidFile ${join(tmp, 'proftpd.pid')}`,
      `ScoreboardFile ${join(tmp, 'proftpd.scoreboard')}`,
      `SystemLog ${join(tmp, 'proftpd.log')}`,
      'TransferLog none',
      'DefaultRoot ~',
      'Umask 022',
      'AllowOverwrite on',
      'AllowStoreRestart on',
      ...(opts.tls === undefined ? [] : proftpdTlsConf(bin, tmp, opts.tls)),
    ]
    const confPath = join(tmp, 'proftpd.conf')
    await writeFile(confPath, conf.join('\n') + '\n')
    const args = ['-n', '-c', confPath]
    return { bin, args, root: home, user: VIRTUAL_USER, password: VIRTUAL_PASSWORD }
  })
}

/**
 * pure-ftpd 1.0.50 with one virtual user from a PureDB, chrooted to a writable home.
 * `forcedPassiveIp` sets -P. Note: pure-ftpd caps the number of clients at half the passive
 * range size, whatever -c says: give it a range twice as wide as the sessions a test opens.
 * `tls` turns on explicit FTPS: -Y 3 (required) or -Y 1, the certificate and key by -2.
 */
export function startPureFtpd(opts: ServerPorts & { forcedPassiveIp?: string; tls?: ServerTls }): Promise<FtpServer> {
  return startIn('pure-ftpd', opts.port, async (tmp) => {
    const home = await makeUserHome(tmp)
    const passwdPath = join(tmp, 'pureftpd.passwd')
    const pdbPath = join(tmp, 'pureftpd.pdb')
    // pure-pw would store an argon2 hash (about 3 s per login); a SHA-512 crypt hash is accepted
    // too. The 18 fields of pure-pw's format; "/./" marks the chroot point.
    const hash = await sha512Crypt(VIRTUAL_PASSWORD)
    const fields = [VIRTUAL_USER, hash, String(NOBODY_UID), String(NOBODY_GID), '', `${home}/./`]
    await writeFile(passwdPath, [...fields, ...Array<string>(12).fill('')].join(':') + '\n', { mode: 0o600 })
    const mkdb = await runProcess('pure-pw', ['mkdb', pdbPath, '-f', passwdPath], { timeoutMs: 10_000 })
    if (mkdb.code !== 0) {
      throw new Error(`pure-pw mkdb failed (${mkdb.code}): ${mkdb.stderr}${mkdb.stdout}`)
    }
    const args = [
      '-S', `${HOST},${opts.port}`,
      '-4',
      '-p', `${opts.pasvMin}:${opts.pasvMax}`,
      '-l', `puredb:${pdbPath}`,
      '-E', // no anonymous logins
      '-H', // no reverse DNS
      '-A', // chroot everyone
      // 50 clients and 50 per IP by default; behind a proxy every session comes from one address.
      '-c', '200',
      '-C', '200',
      '-g', join(tmp, 'pure-ftpd.pid'),
      ...(opts.forcedPassiveIp === undefined ? [] : ['-P', opts.forcedPassiveIp]),
      // -Y 0 no TLS, 1 TLS offered, 2 TLS required on control, 3 on control and data (RETR, STOR,
      // LIST without PROT P get "521 Data connections must be encrypted").
      ...(opts.tls === undefined ? [] : ['-Y', opts.tls.required ? '3' : '1', '-2', `${opts.tls.cert},${opts.tls.key}`]),
    ]
    return { bin: findBinary('pure-ftpd'), args, root: home, user: VIRTUAL_USER, password: VIRTUAL_PASSWORD }
  })
}

/**
 * mod_tls lines for proftpd.conf. The modules dir is found next to the binary (usr/sbin/proftpd,
 * usr/lib/proftpd), the layout of both the Debian package and its unpacked copy under
 * .cache/debs/proftpd, whose binary still looks in /usr/lib/proftpd by default.
 */
function proftpdTlsConf(bin: string, tmp: string, tls: ProftpdTls): string[] {
  const modules = join(dirname(dirname(bin)), 'lib', 'proftpd')
  if (!existsSync(join(modules, 'mod_tls.so'))) {
    throw new Error(`${join(modules, 'mod_tls.so')} not found (Debian proftpd-mod-crypto): run "bash scripts/install-deps.sh" as root`)
  }
  return [
    `ModulePath ${modules}`,
    'LoadModule mod_tls.c',
    'TLSEngine on',
    `TLSRequired ${tls.required ? 'on' : 'off'}`,
    // The test certificates are EC P-256, hence the EC directives (TLSRSACertificateFile logs
    // "expected RSA certificate, found EC" at start, though it served the certificate here).
    `TLSECCertificateFile ${tls.cert}`,
    `TLSECCertificateKeyFile ${tls.key}`,
    `TLSProtocol ${tls.protocols ?? 'TLSv1.2 TLSv1.3'}`,
    'TLSVerifyClient off',
    `TLSLog ${join(tmp, 'tls.log')}`,
  ]
}

/** What a server's setup hands to launch(): the command line and the login it serves. */
interface LaunchSpec {
  bin: string;
  args: string[];
  root: string;
  user: string;
  password: string;
  /** The server speaks TLS from the first byte (implicit FTPS): its greeting is awaited over TLS. */
  implicitTls?: boolean;
}

/** Runs `prepare` in a fresh temp dir and launches the server; the dir is removed on any failure. */
async function startIn(
  kind: FtpServer['kind'],
  port: number,
  prepare: (tmp: string) => Promise<LaunchSpec>,
): Promise<FtpServer> {
  const tmp = await mkdtemp(join(tmpdir(), `e2e-${kind}-`))
  try {
    // The servers drop to unprivileged users that must traverse it.
    await chmod(tmp, 0o755)
    return await launch(kind, port, tmp, await prepare(tmp))
  } catch (err) {
    await rm(tmp, { recursive: true, force: true })
    throw err
  }
}

async function makeUserHome(tmp: string): Promise<string> {
  const home = join(tmp, 'home')
  await mkdir(join(home, UPLOAD_DIR), { recursive: true })
  await chown(home, NOBODY_UID, NOBODY_GID)
  await chown(join(home, UPLOAD_DIR), NOBODY_UID, NOBODY_GID)
  return home
}

async function sha512Crypt(password: string): Promise<string> {
  const res = await runProcess('openssl', ['passwd', '-6', password], { timeoutMs: 10_000 })
  const hash = res.stdout.trim()
  if (res.code !== 0 || !hash.startsWith('$6$')) {
    throw new Error(`openssl passwd -6 failed (${res.code}): ${res.stderr}`)
  }
  return hash
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    // Already gone.
  }
}

async function launch(kind: FtpServer['kind'], port: number, tmp: string, spec: LaunchSpec): Promise<FtpServer> {
  const tls = spec.implicitTls === true
  if (await greets(port, tls)) {
    throw new Error(`${kind}: port ${port} already has an FTP server (a leftover from an earlier run?)`)
  }
  // Its own process group: every server forks a process per session, and stop() must end
  // those too. Killing the group by this child's PID touches nothing else. setpriv execs the
  // server in place (same PID) with a parent-death signal, so a test process that is killed
  // (tap's timeout) takes its server with it instead of leaving it on the port.
  const setpriv = findBinary('setpriv')
  const child = spawn(setpriv, ['--pdeathsig', 'KILL', '--', spec.bin, ...spec.args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  const output = captureTail(child)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const pid = await spawned(child, setpriv)
  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        killGroup(pid, 'SIGTERM')
        const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), STOP_TIMEOUT_MS)
        await exited
        clearTimeout(timer)
      }
      // Session processes may outlive the master on SIGTERM.
      killGroup(pid, 'SIGKILL')
      await rm(tmp, { recursive: true, force: true })
    })()
    return stopping
  }
  try {
    await waitForGreeting(port, tls, exited, output)
  } catch (err) {
    await stop()
    throw new Error(`${kind} did not start on ${HOST}:${port}: ${(err as Error).message}`, { cause: err })
  }
  return { kind, host: HOST, port, root: spec.root, uploadDir: UPLOAD_DIR, user: spec.user, password: spec.password, pid, stop }
}

function spawned(child: ChildProcess, bin: string): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`cannot run ${bin}: ${e.message}`, { cause: e })))
    child.once('spawn', () => resolve(child.pid as number))
  })
}

/** Keeps the last 8 KiB of the server's stdout and stderr, for the start failure message. */
function captureTail(child: ChildProcess): () => string {
  let tail = ''
  const add = (b: Buffer): void => {
    tail = (tail + b.toString('utf8')).slice(-8192)
  }
  child.stdout?.on('data', add)
  child.stderr?.on('data', add)
  return () => tail
}

async function waitForGreeting(port: number, tls: boolean, exited: Promise<void>, output: () => string): Promise<void> {
  let hasExited = false
  void exited.then(() => {
    hasExited = true
  })
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (hasExited) throw new Error(`it exited: ${output().trim() || '(no output)'}`)
    if (await greets(port, tls)) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`no 220 greeting within ${START_TIMEOUT_MS} ms: ${output().trim() || '(no output)'}`)
}

/**
 * True when something on the port sends a final 220 reply line (RFC 959 4.2: a multi-line reply
 * ends on "220 "; pure-ftpd sends "220-" lines first); false on refusal or anything else.
 * With `tls`, the greeting is read over TLS (implicit FTPS; the certificate is not checked here).
 */
function greets(port: number, tls = false): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls ? tlsConnect({ host: HOST, port, rejectUnauthorized: false }) : connect({ host: HOST, port })
    let text = ''
    const done = (ok: boolean): void => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(2000, () => done(false))
    socket.on('error', () => done(false))
    socket.on('close', () => done(false))
    socket.on('data', (b: Buffer) => {
      text += b.toString('latin1')
      if (/^220 /m.test(text)) done(true)
      else if (text.length > 4096) done(false)
    })
  })
}
