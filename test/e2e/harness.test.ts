// Proves the end-to-end harness itself, with DIRECT connections (no proxy): a server started
// with a wrong passive address really breaks a client that honours the 227, the clients that
// ignore it still work, and every client helper moves real bytes with a correct server.
// Ports: this file owns 22100-22199: control ports 22100-22109, passive ranges 22110-22199.
import t from 'tap'
import type { Test } from 'tap'
import { join } from 'node:path'
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
  lftpDownload,
  lftpList,
  lftpUpload,
  wgetDownload,
} from './lib/clients.js'
import {
  makeRandomFile,
  sha256File,
  startProftpd,
  startPureFtpd,
  startVsftpd,
} from './lib/servers.js'
import type { FtpServer } from './lib/servers.js'

const MiB = 1 << 20
const WRONG = '127.0.0.99'

/** The end of a client's trace, shown by tap only when the assertion fails. */
function tail(res: { stderr: string }): { stderr: string } {
  return { stderr: res.stderr.slice(-2000) }
}

t.setTimeout(240_000)

async function serve(t: Test, server: FtpServer): Promise<{ sha256: string; out: (name: string) => string }> {
  t.teardown(() => server.stop())
  const file = await makeRandomFile(server.root, 'payload.bin', MiB)
  const dir = t.testdir()
  return { sha256: file.sha256, out: (name) => join(dir, name) }
}

const wrongServers: Array<[string, () => Promise<FtpServer>]> = [
  ['vsftpd', () => startVsftpd({ port: 22100, pasvMin: 22110, pasvMax: 22119, pasvAddress: WRONG })],
  ['proftpd', () => startProftpd({ port: 22101, pasvMin: 22120, pasvMax: 22129, masqueradeAddress: WRONG })],
  ['pure-ftpd', () => startPureFtpd({ port: 22102, pasvMin: 22130, pasvMax: 22139, forcedPassiveIp: WRONG })],
]

for (const [name, start] of wrongServers) {
  t.test(`${name} advertising ${WRONG}: a client that honours the 227 fails`, async (t) => {
    const server = await start()
    const { sha256, out } = await serve(t, server)
    const url = ftpUrl(server, 'payload.bin')

    const honours = await curlDownload({ url, out: out('pasv.bin'), mode: 'pasv' })
    t.match(honours.stderr, /< 227 .*127,0,0,99,\d+,\d+/, 'the 227 names the wrong address')
    t.equal(honours.code, 7, 'curl --disable-epsv --no-ftp-skip-pasv-ip: exit 7, cannot connect', tail(honours))
    t.ok(honours.sent.includes('PASV') && !honours.sent.includes('EPSV'), 'it sent PASV, not EPSV')

    const ignores = await curlDownload({ url, out: out('default.bin'), mode: 'default' })
    t.equal(ignores.code, 0, 'curl with its defaults succeeds', tail(ignores))
    t.equal(ignores.sha256, sha256, 'and downloads the same bytes')
    t.ok(ignores.sent.includes('EPSV'), 'through EPSV')
  })
}

t.test(`vsftpd advertising ${WRONG}: the other clients that honour the 227 fail too`, async (t) => {
  const server = await startVsftpd({ port: 22106, pasvMin: 22170, pasvMax: 22179, pasvAddress: WRONG })
  const { out } = await serve(t, server)
  const wget = await wgetDownload({ url: ftpUrl(server, 'payload.bin'), out: out('wget.bin') })
  t.equal(wget.code, 4, 'wget: exit 4 (network failure)', tail(wget))
  const ftplib = await ftplibDownload({ ...server, mode: 'pasv', remote: 'payload.bin', out: out('ftplib.bin') })
  t.equal(ftplib.code, 1, 'ftplib with trust_server_pasv_ipv4_address fails', tail(ftplib))
  t.match(ftplib.stderr, /ConnectionRefusedError/, 'because the data connection is refused')
  const basic = await basicFtpDownload({ ...server, mode: 'pasv', remote: 'payload.bin', out: out('basic.bin') })
  t.equal(basic.code, 1, 'basic-ftp with enterPassiveModeIPv4 fails', tail(basic))
  t.match(basic.stderr, /ECONNREFUSED 127\.0\.0\.99/, 'because 127.0.0.99 refuses')
  // lftp's quirk, recorded so that a proxy test does not count on lftp to fail on loopback.
  const lftp = await lftpDownload({ ...server, mode: 'pasv', remote: 'payload.bin', out: out('lftp.bin') })
  t.equal(lftp.code, 0, 'lftp "fixes" a 227 that names 127.0.0.99 and succeeds', tail(lftp))
  t.match(lftp.stderr, /Address returned by PASV seemed to be incorrect and has been fixed/, 'lftp says it fixed it')
})

t.test('vsftpd with a correct passive address: every client helper moves the same bytes', async (t) => {
  const server = await startVsftpd({ port: 22103, pasvMin: 22140, pasvMax: 22149 })
  const { sha256, out } = await serve(t, server)
  const url = ftpUrl(server, 'payload.bin')
  const payload = join(server.root, 'payload.bin')

  const get = { ...server, remote: 'payload.bin' }
  const downloads = [
    ['curl pasv', 'PASV', await curlDownload({ url, out: out('curl-pasv.bin'), mode: 'pasv' })],
    ['curl epsv', 'EPSV', await curlDownload({ url, out: out('curl-epsv.bin'), mode: 'epsv' })],
    ['wget', 'PASV', await wgetDownload({ url, out: out('wget.bin') })],
    ['ftplib pasv', 'PASV', await ftplibDownload({ ...get, mode: 'pasv', out: out('ftplib-pasv.bin') })],
    ['ftplib epsv', 'EPSV', await ftplibDownload({ ...get, mode: 'epsv', out: out('ftplib-epsv.bin') })],
    ['basic-ftp pasv', 'PASV', await basicFtpDownload({ ...get, mode: 'pasv', out: out('basic-pasv.bin') })],
    ['basic-ftp default', 'EPSV', await basicFtpDownload({ ...get, mode: 'default', out: out('basic-default.bin') })],
    ['lftp pasv', 'PASV', await lftpDownload({ ...get, mode: 'pasv', out: out('lftp-pasv.bin') })],
    ['lftp epsv', 'EPSV', await lftpDownload({ ...get, mode: 'epsv', out: out('lftp-epsv.bin') })],
  ] as const
  for (const [client, command, res] of downloads) {
    t.equal(res.code, 0, `${client} download exits 0`, tail(res))
    t.equal(res.sha256, sha256, `${client} downloads the same bytes`)
    const other = command === 'PASV' ? 'EPSV' : 'PASV'
    t.ok(res.sent.includes(command) && !res.sent.includes(other), `${client} used ${command} only`)
  }

  const up = (name: string): string => `${server.uploadDir}/${name}`
  const uploads = [
    ['curl', await curlUpload({ url: ftpUrl(server, up('curl.bin')), local: payload, mode: 'pasv' })],
    ['ftplib', await ftplibUpload({ ...server, mode: 'epsv', local: payload, remote: up('ftplib.bin') })],
    ['basic-ftp', await basicFtpUpload({ ...server, mode: 'pasv', local: payload, remote: up('basic.bin') })],
    ['lftp', await lftpUpload({ ...server, mode: 'pasv', local: payload, remote: up('lftp.bin') })],
  ] as const
  for (const [client, res] of uploads) {
    t.equal(res.code, 0, `${client} upload exits 0`, tail(res))
  }
  for (const name of ['curl.bin', 'ftplib.bin', 'basic.bin', 'lftp.bin']) {
    const uploaded = await sha256File(join(server.root, server.uploadDir, name))
    t.equal(uploaded, sha256, `uploaded ${name} has the same bytes`)
  }
  // A second STOR to one name is allowed (anon_other_write_enable).
  const again = await curlUpload({ url: ftpUrl(server, up('curl.bin')), local: payload, mode: 'epsv' })
  t.equal(again.code, 0, 'overwriting an upload works', tail(again))

  const listings = [
    ['curl', await curlList({ url: ftpUrl(server, `${server.uploadDir}/`), mode: 'pasv' })],
    ['ftplib', await ftplibList({ ...server, mode: 'epsv', remote: server.uploadDir })],
    ['basic-ftp', await basicFtpList({ ...server, mode: 'pasv', remote: server.uploadDir })],
    ['lftp', await lftpList({ ...server, mode: 'pasv', remote: server.uploadDir })],
  ] as const
  for (const [client, res] of listings) {
    t.equal(res.code, 0, `${client} LIST exits 0`, tail(res))
    for (const name of ['curl.bin', 'ftplib.bin', 'basic.bin', 'lftp.bin']) {
      t.match(res.stdout, name, `${client} LIST shows ${name}`)
    }
  }
})

const virtualUserServers: Array<[string, () => Promise<FtpServer>]> = [
  ['proftpd', () => startProftpd({ port: 22104, pasvMin: 22150, pasvMax: 22159 })],
  ['pure-ftpd', () => startPureFtpd({ port: 22105, pasvMin: 22160, pasvMax: 22169 })],
]

for (const [name, start] of virtualUserServers) {
  t.test(`${name} with a correct passive address: the virtual user logs in, reads and writes`, async (t) => {
    const server = await start()
    const { sha256, out } = await serve(t, server)
    const payload = join(server.root, 'payload.bin')

    const down = await curlDownload({ url: ftpUrl(server, 'payload.bin'), out: out('curl.bin'), mode: 'pasv' })
    t.equal(down.code, 0, 'curl pasv download exits 0', tail(down))
    t.equal(down.sha256, sha256, 'curl downloads the same bytes')
    const basic = await basicFtpDownload({ ...server, mode: 'pasv', remote: 'payload.bin', out: out('basic.bin') })
    t.equal(basic.sha256, sha256, 'basic-ftp pasv downloads the same bytes', tail(basic))
    const ftplib = await ftplibDownload({ ...server, mode: 'epsv', remote: 'payload.bin', out: out('ftplib.bin') })
    t.equal(ftplib.sha256, sha256, 'ftplib epsv downloads the same bytes', tail(ftplib))

    const remote = `${server.uploadDir}/up.bin`
    const upload = await ftplibUpload({ ...server, mode: 'pasv', local: payload, remote })
    t.equal(upload.code, 0, 'ftplib upload exits 0', tail(upload))
    t.equal(await sha256File(join(server.root, remote)), sha256, 'the upload has the same bytes')
    const again = await curlUpload({ url: ftpUrl(server, remote), local: payload, mode: 'epsv' })
    t.equal(again.code, 0, 'overwriting an upload works', tail(again))
    const list = await curlList({ url: ftpUrl(server, `${server.uploadDir}/`), mode: 'pasv' })
    t.match(list.stdout, 'up.bin', 'LIST shows the upload')
  })
}
