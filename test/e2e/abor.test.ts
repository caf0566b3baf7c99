// A real python ftplib abort() after the first MiB of a 256 MiB RETR, through the proxy to
// vsftpd and to ProFTPD. ftplib sends ABOR as TCP urgent data: Linux drops its last byte, so
// the proxy sees `ABOR\r` and must still act on it. Ports: 23500-23699.
import t, { type Test } from 'tap'
import { startProxy } from '../fixtures/proxy.js'
import { runProcess } from './lib/proc.js'
import { makeRandomFile, startProftpd, startVsftpd, type FtpServer } from './lib/servers.js'

t.setTimeout(180_000)

const CLIENT = String.raw`
import ftplib, json, sys, time
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {}
ftp = ftplib.FTP()
ftp.connect(host, port, timeout=20)
ftp.login(user, password)
ftp.trust_server_pasv_ipv4_address = True
ftp.voidcmd('TYPE I')
conn = ftp.transfercmd('RETR big.bin')
got = 0
while got < 1024 * 1024:
    chunk = conn.recv(65536)
    if not chunk:
        break
    got += len(chunk)
out['readBeforeAbort'] = got
# The client no longer reads the data connection from here on.
out['abortReply'] = ftp.abort()
# ftplib's abort() reads one reply; the server's second one (its answer to ABOR) follows.
out['secondReply'] = ftp.getresp() if out['abortReply'].startswith('426') else None
conn.close()
chunks = []
ftp.retrbinary('RETR small.bin', chunks.append)
out['againBytes'] = sum(len(c) for c in chunks)
ftp.quit()
print(json.dumps(out))
`

async function run(t: Test, server: FtpServer, pool: string): Promise<void> {
  t.teardown(() => server.stop())
  await makeRandomFile(server.root, 'big.bin', 256 * 1024 * 1024)
  await makeRandomFile(server.root, 'small.bin', 100_000)
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', pool], 'debug')
  t.teardown(() => p.close())
  // Not spawnSync: the proxy runs in this process and must keep serving meanwhile.
  const r = await runProcess('python3', ['-c', CLIENT, p.host, String(p.port), server.user, server.password], { timeoutMs: 60_000 })
  t.equal(r.code, 0, `ftplib ran: ${r.stderr}`)
  const out = JSON.parse(r.stdout) as { readBeforeAbort: number; abortReply: string; secondReply: string | null; againBytes: number }
  t.ok(out.readBeforeAbort >= 1024 * 1024, 'the client read the first MiB')
  t.match(out.abortReply, /^426/, 'the client gets the 426 first')
  t.match(out.secondReply, /^22[56]/, "then the server's reply to ABOR")
  t.equal(out.againBytes, 100_000, 'another RETR on the same session works')
  const aborted = p.logs.find((l) => l.msg === 'transfer finished' && l.result === 'cancelled' && l.reason === 'aborted')
  t.ok(aborted, 'the lease ended as aborted')
  t.ok(Number(aborted?.bytes) < 64 * 1024 * 1024, `far less than 256 MiB crossed the relay (${String(aborted?.bytes)} bytes)`)
  t.ok(p.logs.some((l) => l.msg === 'command' && (l.cmd as { verb: string }).verb === 'ABOR'), 'the proxy recognised the ABOR')
  t.equal(p.proxy.pool.inUse, 0, "the relay's port is back in the pool")
}

t.test('vsftpd', async (t) => {
  await run(t, await startVsftpd({ port: 23500, pasvMin: 23510, pasvMax: 23549, pasvAddress: '127.0.0.99' }), '23550-23559')
})

t.test('ProFTPD', async (t) => {
  await run(t, await startProftpd({ port: 23600, pasvMin: 23610, pasvMax: 23649, masqueradeAddress: '127.0.0.99' }), '23650-23659')
})
