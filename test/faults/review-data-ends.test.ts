// Findings of the hostile review of pooled reads, each against vsftpd behind the proxy:
// - a client that sends RETR of an empty file (or NLST of an empty directory) before it opens the
//   data connection: the server's data leg ends before the relay starts, and its end must still
//   reach the client at once, with the 226 (it waited for --data-idle-timeout);
// - a download whose server leg is reset (vsftpd resets a data connection whose peer sent it bytes
//   it never read): a short file never comes with a 226.
// - a download the server ends while the client's bytes toward it are still unsent (a scripted
//   server that half-closes and never reads) ends at once with a reset.
// Ports: 28900-28959.
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdir, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { startProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp } from '../fixtures/raw-ftp.js'
import { startVsftpd } from '../e2e/lib/servers.js'

t.setTimeout(120_000)
const server = await startVsftpd({ port: 28900, pasvMin: 28901, pasvMax: 28919, pasvAddress: '127.0.0.99' })
t.teardown(() => server.stop())
await writeFile(join(server.root, 'empty.bin'), Buffer.alloc(0))
await mkdir(join(server.root, 'emptydir'))
const payload = randomBytes(4 * 1024 * 1024)
await writeFile(join(server.root, 'four.bin'), payload)
// A long data-idle timeout: a lost end would show as a wait this long.
const proxy = await startProxy(['--upstream', '127.0.0.1:28900', '--passive-ports', '28920-28939', '--data-idle-timeout', '60s'], 'info')
t.teardown(() => proxy.close())

/** Reads a data socket to its end: the bytes, and whether it ended with a reset. */
function readToEnd(s: net.Socket): Promise<{ bytes: Buffer; reset: boolean }> {
  const chunks: Buffer[] = []
  s.on('data', (c: Buffer) => chunks.push(c))
  return new Promise((resolve) => {
    let reset = false
    s.on('error', () => {
      reset = true
    })
    s.on('close', () => resolve({ bytes: Buffer.concat(chunks), reset }))
  })
}

for (const [what, command, dir] of [
  ['RETR of an empty file', 'RETR empty.bin', ''],
  ['NLST of an empty directory', 'NLST', 'emptydir'],
  ['RETR of 4 MiB', 'RETR four.bin', ''],
] as const) {
  t.test(`${what}, the data connection opened only after the command: its end and the 226 come at once`, async (t) => {
    const c = await RawFtp.connect(proxy.host, proxy.port)
    t.teardown(() => c.close())
    await c.login()
    if (dir !== '') t.equal((await c.cmd(`CWD ${dir}`)).code, 250)
    t.equal((await c.cmd('TYPE I')).code, 200)
    const ep = pasvEndpoint((await c.cmd('PASV')).text)
    c.socket.write(`${command}\r\n`)
    // vsftpd answers 150 and waits for the data connection: the proxy's server leg is open.
    await new Promise((r) => setTimeout(r, 500))
    const started = performance.now()
    const d = net.connect(ep.port, ep.host)
    const got = await readToEnd(d)
    const final = await c.reply(20_000)
    const seconds = (performance.now() - started) / 1000
    const first = final?.code === 150 ? await c.reply(20_000) : final
    t.equal(first?.code, 226, `226: ${first?.text}`)
    t.notOk(got.reset, 'a clean end')
    t.equal(createHash('sha256').update(got.bytes).digest('hex'), createHash('sha256').update(command === 'RETR four.bin' ? payload : Buffer.alloc(0)).digest('hex'), 'the bytes of the file')
    t.ok(seconds < 15, `within ${seconds.toFixed(2)} s, not --data-idle-timeout's 60`)
  })
}

t.test('a download whose server leg is reset: a short file never comes with a 226', async (t) => {
  // vsftpd resets a data connection whose peer sent it bytes it never read. The reset reaches
  // the client as a reset when the proxy sees it as one; when libuv has already reported it to a
  // write (of the client's bytes) the proxy sees a FIN and passes one on, but the final reply is
  // vsftpd's 426 then, never a 226 (a clean end of a short download there is left open).
  for (let i = 0; i < 8; i++) {
    const c = await RawFtp.connect(proxy.host, proxy.port)
    await c.login()
    t.equal((await c.cmd('TYPE I')).code, 200)
    const ep = pasvEndpoint((await c.cmd('PASV')).text)
    const d = net.connect(ep.port, ep.host)
    await once(d, 'connect')
    d.write('bytes on a download connection\n')
    await new Promise((r) => setTimeout(r, 100))
    const reading = readToEnd(d)
    c.socket.write('RETR four.bin\r\n')
    const got = await reading
    let final = await c.reply(20_000)
    if (final !== null && final.code < 200) final = await c.reply(20_000)
    const whole = got.bytes.equals(payload)
    t.ok(whole ? final?.code === 226 : final !== null && final.code >= 400, `run ${i}: ${got.reset ? 'reset' : 'clean end'} after ${got.bytes.length} of ${payload.length} bytes, final reply ${final?.code}`)
    c.close()
  }
})

t.test('a download the server ends while the client\'s bytes toward it are still unsent ends at once with a reset, not when the server closes', async (t) => {
  // A scripted server (no real one does this on demand): its data connection sends 1 MiB, ends
  // its side, never reads, and closes only 20 s later; then 226.
  const held: net.Socket[] = []
  let dataLeg: net.Socket | null = null
  const data = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    held.push(s)
    s.on('error', () => {})
    dataLeg = s
  })
  await new Promise<void>((resolve) => data.listen(28951, '127.0.0.1', resolve))
  const control = net.createServer((s) => {
    held.push(s)
    s.on('error', () => {})
    s.write('220 scripted\r\n')
    s.on('data', (b: Buffer) => {
      for (const line of b.toString('latin1').split('\r\n').filter((l) => l !== '')) {
        const verb = line.split(' ')[0]?.toUpperCase()
        if (verb === 'USER') s.write('230 ok\r\n')
        else if (verb === 'EPSV') s.write('229 Entering Extended Passive Mode (|||28951|)\r\n')
        else if (verb === 'RETR') {
          s.write('150 go\r\n')
          dataLeg?.end(Buffer.alloc(1024 * 1024, 7))
          const leg = dataLeg
          setTimeout(() => leg?.destroy(), 20_000).unref()
        } else s.write('200 ok\r\n')
      }
    })
  })
  await new Promise<void>((resolve) => control.listen(28950, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of held) s.destroy()
    data.close()
    control.close()
  })
  const p = await startProxy(['--upstream', '127.0.0.1:28950', '--passive-ports', '28952-28959', '--data-idle-timeout', '60s'], 'info')
  t.teardown(() => p.close())
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  const epsv = await c.cmd('EPSV')
  const port = Number(/\|\|\|(\d+)\|/.exec(epsv.text)?.[1])
  const d = net.connect(port, '127.0.0.1')
  await once(d, 'connect')
  // Junk on a download connection, more than the kernels take at once.
  d.write(Buffer.alloc(8 * 1024 * 1024, 1))
  await new Promise((r) => setTimeout(r, 500))
  const reading = readToEnd(d)
  const started = performance.now()
  c.socket.write('RETR x\r\n')
  const got = await reading
  const seconds = (performance.now() - started) / 1000
  t.ok(got.reset, 'the client leg is reset')
  t.ok(seconds < 10, `within ${seconds.toFixed(2)} s, not when the server closes (20 s)`)
})
