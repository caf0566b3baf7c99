// --upstream-tls required against servers that misbehave (a scriptable double, test/fixtures/
// tls-ftp-double.ts): nothing of the client's ever reaches the server in clear, and a server that
// will not protect data ends the session. Each case failed before its fix (hostile review of the
// FTPS change): USER and PASS sent before a late greeting went out in clear; a greeting other
// than 220 skipped TLS altogether; a refused PROT P left data to the server in clear.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { makeCertificates } from '../fixtures/certs.js'
import { startProxy, type TestProxy } from '../fixtures/proxy.js'
import { RawFtp } from '../fixtures/raw-ftp.js'
import { startTlsFtpDouble, type DoubleOptions } from '../fixtures/tls-ftp-double.js'

const dir = mkdtempSync(join(tmpdir(), 'ftps-server-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const certs = makeCertificates(dir)

async function setUp(t: Test, options: Omit<DoubleOptions, 'certs'>): Promise<{ client: RawFtp; commands: string[]; proxy: TestProxy }> {
  const server = await startTlsFtpDouble({ certs, ...options })
  t.teardown(() => server.close())
  const proxy = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--upstream-tls', 'required', '--upstream-ca', certs.caCert], 'info')
  t.teardown(() => proxy.close())
  const client = await RawFtp.connect(proxy.host, proxy.port)
  t.teardown(() => client.close())
  return { client, commands: server.commands, proxy }
}

t.test('commands sent before a late greeting wait for the server\'s TLS', async (t) => {
  const { client, commands } = await setUp(t, { greetDelayMs: 500 })
  client.socket.write('USER alice\r\nPASS s3cret\r\n')
  t.equal((await client.reply())?.code, 220, 'the greeting')
  t.equal((await client.reply())?.code, 331)
  t.equal((await client.reply())?.code, 230)
  t.same(commands.filter((c) => c.startsWith('clear')), ['clear AUTH TLS'], 'only AUTH TLS went in clear')
  t.ok(commands.includes('tls USER alice') && commands.includes('tls PASS s3cret'), 'USER and PASS went over TLS')
})

for (const greeting of ['230 hello', '200 hello', '421 busy']) {
  t.test(`a greeting of ${greeting.slice(0, 3)} ends the session; nothing goes in clear`, async (t) => {
    const { client, commands } = await setUp(t, { greeting })
    client.socket.write('USER alice\r\nPASS s3cret\r\n')
    const replies: number[] = []
    for (let r = await client.reply(); r !== null; r = await client.reply()) replies.push(r.code)
    t.equal(replies.at(-1), 421, `the session ends with 421 (${replies.join(' ')})`)
    t.notOk(commands.some((c) => / (USER|PASS)/.test(c)), 'no USER or PASS reached the server')
  })
}

for (const refused of [{ prot: '536 no' }, { pbsz: '500 what' }]) {
  t.test(`a server that answers ${JSON.stringify(refused)} ends the session with 421`, async (t) => {
    const { client, commands } = await setUp(t, refused)
    const replies: string[] = []
    for (let r = await client.reply(); r !== null; r = await client.reply()) replies.push(r.text)
    t.match(replies.at(-1), /^421 The FTP server refused (PROT P|PBSZ 0)/, 'the 421 says why')
    t.notOk(commands.some((c) => / (USER|PASS)/.test(c)), 'nothing of the client reached the server')
  })
}

t.test('a server that leaves after the proxy\'s AUTH TLS without a reply: the session ends, nothing is held', async (t) => {
  // Found by the second review: the session waited for a reply that never came, held until
  // the end of the shutdown grace.
  const { client, commands, proxy } = await setUp(t, { onAuth: 'close' })
  client.socket.write('USER alice\r\n')
  for (let r = await client.reply(); r !== null; r = await client.reply());
  t.pass('the client connection closed')
  const deadline = Date.now() + 10_000
  while (proxy.proxy.sessionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  t.equal(proxy.proxy.sessionCount, 0, 'the session is gone')
  t.notOk(commands.some((c) => / USER/.test(c)), 'USER never reached the server')
})
