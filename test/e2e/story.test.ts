// The story, for real: vsftpd advertises 127.0.0.99 (nothing listens there), like PRODFTP.
// Direct, a client that honours the 227 fails; through the proxy every real client downloads,
// uploads and lists with identical bytes. ProFTPD and pure-ftpd the same for a download.
// Ports: 22500-22799.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startProxy, type TestProxy } from '../fixtures/proxy.js'
import {
  basicFtpDownload,
  basicFtpList,
  basicFtpUpload,
  curlDownload,
  curlList,
  curlUpload,
  ftplibDownload,
  ftplibList,
  ftplibUpload,
  ftpUrl,
  wgetDownload,
  type FtpLogin,
} from './lib/clients.js'
import { makeRandomFile, sha256File, startProftpd, startPureFtpd, startVsftpd, type FtpServer } from './lib/servers.js'

t.setTimeout(300_000)
const SIZE = 64 * 1024 * 1024
const UNREACHABLE = '127.0.0.99'

const work = await mkdtemp(join(tmpdir(), 'fpp-story-'))
t.teardown(() => rm(work, { recursive: true, force: true }))
const local = await makeRandomFile(work, 'local.bin', SIZE)

async function serverWithFile(start: () => Promise<FtpServer>): Promise<{ server: FtpServer; sha256: string }> {
  const server = await start()
  t.teardown(() => server.stop())
  const file = await makeRandomFile(server.root, 'big.bin', SIZE)
  return { server, sha256: file.sha256 }
}

function loginOf(s: FtpServer, p?: TestProxy): FtpLogin {
  return { host: p?.host ?? s.host, port: p?.port ?? s.port, user: s.user, password: s.password }
}

const vs = await serverWithFile(() => startVsftpd({ port: 22500, pasvMin: 22510, pasvMax: 22549, pasvAddress: UNREACHABLE }))
const proxy = await startProxy(['--upstream', '127.0.0.1:22500', '--passive-ports', '22550-22599'], 'info')
t.teardown(() => proxy.close())
const direct = loginOf(vs.server)
const via = loginOf(vs.server, proxy)

t.test('direct: a client that honours the 227 address fails, as against PRODFTP', async (t) => {
  const r = await curlDownload({ url: ftpUrl(direct, 'big.bin'), out: join(work, 'direct.bin'), mode: 'pasv' })
  t.not(r.code, 0, 'curl --disable-epsv --no-ftp-skip-pasv-ip fails')
  t.match(r.stderr, /127\.0\.0\.99/, 'it tried the advertised address')
  const w = await wgetDownload({ url: ftpUrl(direct, 'big.bin'), out: join(work, 'direct-w.bin') })
  t.not(w.code, 0, 'wget fails')
})

t.test('LIST through the proxy equals the listing curl gets directly', async (t) => {
  const reference = await curlList({ url: ftpUrl(direct, ''), mode: 'default' })
  t.equal(reference.code, 0)
  t.match(reference.stdout, /big\.bin/)
  const lines = (s: string): string[] => s.split(/\r?\n/).filter((l) => l !== '')
  for (const mode of ['pasv', 'epsv'] as const) {
    const r = await curlList({ url: ftpUrl(via, ''), mode })
    t.equal(r.code, 0, `curl ${mode}`)
    t.equal(r.stdout, reference.stdout, `curl ${mode} listing identical`)
  }
  const py = await ftplibList({ ...via, mode: 'pasv' })
  t.equal(py.code, 0, 'ftplib')
  t.same(lines(py.stdout), lines(reference.stdout), 'ftplib listing identical')
  const names = lines(reference.stdout).map((l) => l.split(/\s+/).slice(8).join(' ')).sort()
  for (const mode of ['pasv', 'default'] as const) {
    const b = await basicFtpList({ ...via, mode })
    t.equal(b.code, 0, `basic-ftp ${mode}`)
    t.same(lines(b.stdout).sort(), names, `basic-ftp ${mode} names identical`)
  }
})

t.test('RETR of 64 MiB through the proxy with every client: sha256 equal', async (t) => {
  const runs: Array<[string, () => Promise<{ code: number | null; sha256: string | null; sent: string[] }>, string]> = [
    ['curl PASV', () => curlDownload({ url: ftpUrl(via, 'big.bin'), out: join(work, 'c1.bin'), mode: 'pasv' }), 'PASV'],
    ['curl EPSV', () => curlDownload({ url: ftpUrl(via, 'big.bin'), out: join(work, 'c2.bin'), mode: 'epsv' }), 'EPSV'],
    ['wget', () => wgetDownload({ url: ftpUrl(via, 'big.bin'), out: join(work, 'w.bin') }), 'PASV'],
    ['ftplib', () => ftplibDownload({ ...via, mode: 'pasv', remote: 'big.bin', out: join(work, 'p.bin') }), 'PASV'],
    ['basic-ftp PASV', () => basicFtpDownload({ ...via, mode: 'pasv', remote: 'big.bin', out: join(work, 'b1.bin') }), 'PASV'],
    ['basic-ftp default', () => basicFtpDownload({ ...via, mode: 'default', remote: 'big.bin', out: join(work, 'b2.bin') }), 'EPSV'],
  ]
  for (const [name, run, passive] of runs) {
    const r = await run()
    t.equal(r.code, 0, `${name} exits 0`)
    t.equal(r.sha256, vs.sha256, `${name}: sha256 equal`)
    t.ok(r.sent.some((c) => c.toUpperCase().startsWith(passive)), `${name} used ${passive}`)
  }
})

t.test('STOR of 64 MiB through the proxy with every client that uploads: sha256 equal', async (t) => {
  const runs: Array<[string, string, (remote: string) => Promise<{ code: number | null }>]> = [
    ['curl PASV', 'c1.bin', (remote) => curlUpload({ url: ftpUrl(via, remote), local: local.path, mode: 'pasv' })],
    ['curl EPSV', 'c2.bin', (remote) => curlUpload({ url: ftpUrl(via, remote), local: local.path, mode: 'epsv' })],
    ['ftplib', 'p.bin', (remote) => ftplibUpload({ ...via, mode: 'pasv', local: local.path, remote })],
    ['basic-ftp PASV', 'b1.bin', (remote) => basicFtpUpload({ ...via, mode: 'pasv', local: local.path, remote })],
    ['basic-ftp default', 'b2.bin', (remote) => basicFtpUpload({ ...via, mode: 'default', local: local.path, remote })],
  ]
  for (const [name, file, run] of runs) {
    const r = await run(`${vs.server.uploadDir}/${file}`)
    t.equal(r.code, 0, `${name} exits 0`)
    t.equal(await sha256File(join(vs.server.root, vs.server.uploadDir, file)), local.sha256, `${name}: stored bytes equal`)
  }
  t.equal(proxy.proxy.pool.inUse, 0, 'every pool port is back')
})

t.test('ProFTPD (MasqueradeAddress) and pure-ftpd (-P) through the proxy', async (t) => {
  const servers = [
    await serverWithFile(() => startProftpd({ port: 22600, pasvMin: 22610, pasvMax: 22649, masqueradeAddress: UNREACHABLE })),
    await serverWithFile(() => startPureFtpd({ port: 22700, pasvMin: 22710, pasvMax: 22749, forcedPassiveIp: UNREACHABLE })),
  ]
  let pool = 22650
  for (const { server, sha256 } of servers) {
    const directFail = await curlDownload({ url: ftpUrl(loginOf(server), 'big.bin'), out: join(work, `${server.kind}-d.bin`), mode: 'pasv' })
    t.not(directFail.code, 0, `${server.kind} direct fails`)
    const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', `${pool}-${pool + 39}`], 'info')
    pool += 100
    t.teardown(() => p.close())
    for (const mode of ['pasv', 'epsv'] as const) {
      const r = await curlDownload({ url: ftpUrl(loginOf(server, p), 'big.bin'), out: join(work, `${server.kind}-${mode}.bin`), mode })
      t.equal(r.code, 0, `${server.kind} ${mode} through the proxy`)
      t.equal(r.sha256, sha256, `${server.kind} ${mode}: sha256 equal`)
    }
    const rewrites = p.logs.filter((l) => l.msg === 'passive reply rewritten')
    t.ok(rewrites.some((l) => String(l.advertised).startsWith(`${UNREACHABLE}:`)), `${server.kind} advertised ${UNREACHABLE}`)
  }
})
