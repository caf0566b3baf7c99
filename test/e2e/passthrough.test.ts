// REST, APPE, NLST, MLSD, SIZE and MDTM pass through the proxy untouched: against vsftpd and
// pure-ftpd (which has MLSD), answers equal to the direct ones. Ports: 23800-23899.
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { startProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp, readAll } from '../fixtures/raw-ftp.js'
import { makeRandomFile, startPureFtpd, startVsftpd, type FtpServer } from './lib/servers.js'

t.setTimeout(120_000)
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

async function session(host: string, port: number, s: FtpServer): Promise<RawFtp> {
  const c = await RawFtp.connect(host, port)
  await c.login(s.user, s.password)
  await c.cmd('TYPE I')
  return c
}

/** Runs one data command over PASV (dialling the control host); its final reply and the bytes received. */
async function withData(c: RawFtp, cmd: string, send?: Buffer): Promise<{ code: number; data: Buffer }> {
  const ep = pasvEndpoint((await c.cmd('PASV')).text)
  if (send !== undefined) {
    const net = await import('node:net')
    const s = net.connect(ep.port, '127.0.0.1')
    const reply = c.cmd(cmd)
    s.end(send)
    s.on('error', () => {})
    return { code: (await reply).code, data: Buffer.alloc(0) }
  }
  // The address a direct 227 names is unreachable: like curl's default, dial the control host.
  const data = readAll('127.0.0.1', ep.port)
  const r = await c.cmd(cmd)
  return { code: r.code, data: await data }
}

async function compare(t: Test, s: FtpServer, pool: string, mlsd: boolean): Promise<void> {
  const file = await makeRandomFile(s.root, 'f.bin', 1_000_000)
  const p = await startProxy(['--upstream', `127.0.0.1:${s.port}`, '--passive-ports', pool], 'info')
  const direct = await session(s.host, s.port, s)
  const via = await session(p.host, p.port, s)
  // Clients first, then the proxy, then the server: a session still open when the server stops
  // would outlive it as an orphan holding the port.
  t.teardown(async () => {
    direct.close()
    via.close()
    await p.close()
    await s.stop()
  })
  for (const cmd of ['SIZE f.bin', 'MDTM f.bin']) {
    const a = await direct.cmd(cmd)
    const b = await via.cmd(cmd)
    t.same([b.code, b.text], [a.code, a.text], `${cmd}: identical reply`)
    t.equal(a.code, 213)
  }
  t.equal((await via.cmd('REST 600000')).code, 350, 'REST')
  const rest = await withData(via, 'RETR f.bin')
  t.equal(rest.code, 226)
  t.equal(sha(rest.data), sha((await readFile(file.path)).subarray(600_000)), 'RETR after REST: the tail, byte for byte')
  const nlstDirect = await withData(direct, 'NLST')
  const nlstVia = await withData(via, 'NLST')
  t.equal(nlstVia.code, 226)
  t.same(nlstVia.data, nlstDirect.data, 'NLST identical')
  const part1 = Buffer.from('first part;')
  const part2 = Buffer.from('second part.')
  const up = `${s.uploadDir}/appended.txt`
  t.equal((await withData(via, `STOR ${up}`, part1)).code, 226)
  t.equal((await withData(via, `APPE ${up}`, part2)).code, 226, 'APPE')
  t.same(await readFile(join(s.root, up)), Buffer.concat([part1, part2]), 'appended bytes')
  if (mlsd) {
    const a = await withData(direct, 'MLSD')
    const b = await withData(via, 'MLSD')
    t.equal(b.code, 226, 'MLSD')
    const names = (x: Buffer): string[] => x.toString('latin1').split('\r\n').filter(Boolean).map((l) => l.split('; ').pop() ?? '').sort()
    t.same(names(b.data), names(a.data), 'MLSD lists the same entries')
    t.ok(names(b.data).includes('f.bin'))
  }
}

t.test('vsftpd', async (t) => {
  await compare(t, await startVsftpd({ port: 23800, pasvMin: 23810, pasvMax: 23839, pasvAddress: '127.0.0.99' }), '23840-23849', false)
})

t.test('pure-ftpd (MLSD)', async (t) => {
  await compare(t, await startPureFtpd({ port: 23850, pasvMin: 23860, pasvMax: 23889, forcedPassiveIp: '127.0.0.99' }), '23890-23899', true)
})
