// Section 3 of `npm run bench`: N concurrent real sessions against vsftpd through the proxy, each
// logging in, listing a directory (LIST) and downloading 1 MiB (RETR, checked byte for byte),
// with the proxy's CPU time and peak RSS.
//
// The sessions log in in waves of LOGIN_WAVE (each wave's connects at once), and none lists or
// downloads until every login has ended: then all N are logged in at the same time, and all start
// their LIST at once. The wave stays below vsftpd's listen backlog (32, fixed in vsftpd): a larger
// burst overflows vsftpd's accept queue, and a connection the kernel then holds half-accepted waits
// for SYN-ACK retransmissions, some longer than the proxy's 30 s greeting timeout (waves of 100
// here: 24 of 1,000 sessions got the proxy's 421, and the logins took 38 s instead of 4). That
// measures vsftpd's backlog, not the proxy. Without the barrier, early sessions would end before
// late ones start, and fewer than N would ever be open together.
//
// Limits raised on purpose (behind the proxy every session comes from one address):
// vsftpd's max_clients/max_per_ip (set by startVsftpd in test/e2e/lib/servers.ts; read back from
// its config for the report), its passive range (2.5 ports per session: vsftpd tries 9 random ports
// of the range per PASV and gives up with "500 OOPS: vsf_sysutil_bind"), the proxy's
// --max-sessions, --max-sessions-per-client and --max-leases-per-client, and its pool (1.5 ports
// per session).
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { startVsftpd } from '../test/e2e/lib/servers.js'
import type { RawFtp } from '../test/fixtures/raw-ftp.js'
import { command, countReasons, final, login, openControl, pasvConnect, reasonOf, readToEnd, StepFailure } from './ftp.js'
import { MiB, procCpuSeconds, procMemory, sample, scrape, sleep, startProxyProcess, type SectionPorts } from './lib.js'

const LOGIN_WAVE = 25
const FILE_BYTES = MiB
const LISTED_FILES = 50
// One step (a reply, a data connection, the whole 1 MiB) slower than this is a failure.
const STEP_MS = 60_000
const WRONG_ADDR = '127.0.0.99'

export interface SessionsOptions {
  sessions: number
  ports: SectionPorts
  proxyMain: string
  cleanup: Array<() => Promise<unknown>>
  log: (s: string) => void
}

export interface SessionsResult {
  lines: string[]
  sessions: number
  ok: number
  failed: number
  notes: string[]
}

/** One session's steps; null when it completed, else the reason it did not. */
type Outcome = string | null

export async function runSessions(o: SessionsOptions): Promise<SessionsResult> {
  const notes: string[] = []
  const n = o.sessions
  // The proxy dials vsftpd's control address for data (its 227 names 127.0.0.99, where nothing
  // listens): every session relies on the rewrite.
  const vs = await startVsftpd({ port: o.ports.vsftpd, pasvMin: o.ports.vsftpdPasv.min, pasvMax: o.ports.vsftpdPasv.max, pasvAddress: WRONG_ADDR })
  o.cleanup.push(() => vs.stop())
  const vsConf = await readFile(join(dirname(vs.root), 'vsftpd.conf'), 'utf8')
  const confValue = (key: string): number => Number(new RegExp(`^${key}=(\\d+)$`, 'm').exec(vsConf)?.[1] ?? 0)
  const maxPerIp = confValue('max_per_ip')
  const maxClients = confValue('max_clients')
  if (maxPerIp !== 0 && maxPerIp < n) notes.push(`sessions: vsftpd's max_per_ip is ${maxPerIp} (test/e2e/lib/servers.ts), below the ${n} sessions: vsftpd refuses the rest`)

  const payload = randomBytes(FILE_BYTES)
  await writeFile(join(vs.root, 'one.bin'), payload, { mode: 0o644 })
  await mkdir(join(vs.root, 'dir'), { mode: 0o755 })
  for (let i = 0; i < LISTED_FILES; i++) await writeFile(join(vs.root, 'dir', `file-${i}.txt`), `${i}\n`, { mode: 0o644 })

  const limits = [
    '--max-sessions', String(n + 100),
    '--max-sessions-per-client', String(n + 100),
    // A session holds one lease at a time here (LIST, then RETR).
    '--max-leases-per-client', String(n + 100),
  ]
  const proxy = await startProxyProcess({ listenPort: o.ports.proxy, upstreamPort: o.ports.vsftpd, pool: o.ports.proxyPool, metrics: true, main: o.proxyMain, extraArgs: limits })
  o.cleanup.push(() => proxy.stop(10_000))

  const rssBefore = procMemory(proxy.pid).rss
  const cpuBefore = procCpuSeconds(proxy.pid)
  let rssPeak = rssBefore
  const poll = setInterval(() => {
    try {
      rssPeak = Math.max(rssPeak, procMemory(proxy.pid).rss)
    } catch {
      // The proxy exited: the figures below say so.
    }
  }, 100)

  const started = Date.now()
  const controls: Array<RawFtp | null> = new Array<RawFtp | null>(n).fill(null)
  const outcomes: Outcome[] = new Array<Outcome>(n).fill(null)
  // Logins, in waves.
  for (let first = 0; first < n; first += LOGIN_WAVE) {
    const wave = Array.from({ length: Math.min(LOGIN_WAVE, n - first) }, (_, k) => first + k)
    await Promise.all(wave.map(async (i) => {
      let ftp: RawFtp | null = null
      try {
        ftp = await openControl(o.ports.proxy, STEP_MS)
        await login(ftp, STEP_MS)
        await command(ftp, 'TYPE I', [200], STEP_MS)
        controls[i] = ftp
      } catch (err) {
        ftp?.close()
        outcomes[i] = `login: ${reasonOf(err)}`
      }
    }))
  }
  const loggedIn = controls.filter((c) => c !== null).length
  const loginSeconds = (Date.now() - started) / 1000
  o.log(`sessions: ${loggedIn} of ${n} logged in at once after ${loginSeconds.toFixed(1)} s`)

  // The barrier is down: every logged-in session lists and downloads at once.
  const transfersStarted = Date.now()
  await Promise.all(controls.map(async (ftp, i) => {
    if (ftp === null) return
    try {
      const listing = await pasvConnect(ftp, STEP_MS)
      const listed = readToEnd(listing, 'LIST data', STEP_MS, false)
      await command(ftp, 'LIST dir', [226], STEP_MS)
      if ((await listed).bytes === 0) throw new StepFailure('LIST: empty listing')
      const data = await pasvConnect(ftp, STEP_MS)
      const got = readToEnd(data, 'RETR data', STEP_MS, true)
      await command(ftp, 'RETR one.bin', [226], STEP_MS)
      const { bytes, data: body } = await got
      if (bytes !== FILE_BYTES) throw new StepFailure(`RETR: ${bytes < FILE_BYTES ? 'short' : 'long'} download`)
      if (!payload.equals(body!)) throw new StepFailure('RETR: bytes differ')
      ftp.socket.write('QUIT\r\n')
      await final(ftp, 'QUIT', [221], STEP_MS)
    } catch (err) {
      outcomes[i] = reasonOf(err)
    } finally {
      ftp.close()
    }
  }))
  const transferSeconds = (Date.now() - transfersStarted) / 1000
  clearInterval(poll)

  // The proxy's CPU over the whole section, its last session's end included.
  await sleep(500)
  const cpu = procCpuSeconds(proxy.pid) - cpuBefore
  const mem = procMemory(proxy.pid)
  rssPeak = Math.max(rssPeak, mem.rss)
  let metrics = ''
  try {
    metrics = await scrape(proxy.metricsUrl!)
  } catch (err) {
    notes.push(`sessions: /metrics: ${(err as Error).message}`)
  }
  const metric = (name: string, labels = ''): string => {
    try {
      return String(sample(metrics, name, labels))
    } catch {
      return 'n/a'
    }
  }
  if (proxy.warnings.length > 0) notes.push(`sessions: the proxy logged ${proxy.warnings.length} warning(s); first: ${JSON.stringify(proxy.warnings[0])}`)

  const failures = outcomes.filter((x): x is string => x !== null)
  const ok = n - failures.length
  const mib = (b: number): string => (b / MiB).toFixed(1)
  const lines = [
    `${n} sessions through ftp-pasv-proxy to vsftpd (advertising 127.0.0.99, so every data connection relies on the rewrite). Logins in waves of ${LOGIN_WAVE}; then all logged-in sessions at once: TYPE I, PASV + LIST of a ${LISTED_FILES}-file directory, PASV + RETR of 1 MiB (compared byte for byte), QUIT.`,
    `Limits raised on purpose: vsftpd max_clients=${maxClients}, max_per_ip=${maxPerIp}, passive range ${o.ports.vsftpdPasv.min}-${o.ports.vsftpdPasv.max} (${o.ports.vsftpdPasv.max - o.ports.vsftpdPasv.min + 1} ports); proxy ${limits.join(' ')}, --passive-ports ${o.ports.proxyPool.min}-${o.ports.proxyPool.max} (${o.ports.proxyPool.max - o.ports.proxyPool.min + 1} ports).`,
    '',
    '| sessions | succeeded | failed | logged in at once | login phase s | LIST + RETR phase s | proxy CPU s | proxy RSS before MiB | proxy peak RSS MiB (polled / VmHWM) |',
    '|---|---|---|---|---|---|---|---|---|',
    `| ${n} | ${ok} | ${failures.length} | ${loggedIn} | ${loginSeconds.toFixed(1)} | ${transferSeconds.toFixed(1)} | ${cpu.toFixed(2)} | ${mib(rssBefore)} | ${mib(rssPeak)} / ${mib(mem.hwm)} |`,
    '',
    `The proxy's counters: sessions ${metric('ftp_proxy_sessions_total')}, data connections ok ${metric('ftp_proxy_data_connections_total', 'result="ok"')}, failed ${metric('ftp_proxy_data_connections_total', 'result="failed"')}, pool ports in use now ${metric('ftp_proxy_port_pool_in_use')}, sessions open now ${metric('ftp_proxy_sessions_active')}.`,
  ]
  const reasons = countReasons(failures)
  if (reasons.length > 0) {
    lines.push('', '| failure reason | sessions |', '|---|---|')
    for (const [reason, count] of reasons) lines.push(`| ${reason} | ${count} |`)
  } else {
    lines.push('', 'Failures by reason: none.')
  }
  return { lines, sessions: n, ok, failed: failures.length, notes }
}
