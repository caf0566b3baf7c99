// diagnose against a real pyftpdlib 1.5.7 (Debian python3-pyftpdlib), which answers a wrong
// password after 3 s (FTPHandler.auth_failed_timeout) on purpose. With its default timeout,
// diagnose must report that 530 as a refused login, not as silence; and against one that puts
// an unreachable address in its 227, the fix names pyftpdlib's own setting (issue 8, finding 11).
// Ports: controls 27620 and 27630, passive 27621-27629 and 27631-27639.
import t from 'tap'
import { diagnoseCli } from './fixtures/helpers.js'
import { startPyftpdlib } from './fixtures/pyftpdlib.js'

t.setTimeout(90_000)

const server = await startPyftpdlib({ port: 27620, passive: '27621-27629', user: 'alice', password: 'right' })
t.teardown(() => server.stop())

t.test("a wrong password: the 530 that comes 3 s later is reported, not 'no reply'", async (t) => {
  const started = Date.now()
  const r = await diagnoseCli(['ftp://alice:wrong@127.0.0.1:27620'])
  const out = r.stdout.toString()
  t.equal(r.code, 2, 'nothing to diagnose without a login')
  t.match(out, /^ {2}login {4}530 Authentication failed\.$/m)
  t.notMatch(out, /no reply/)
  t.match(out, /^Verdict: not diagnosed: login_failed, exit 2$/m)
  t.equal(r.stderr.toString(), 'ftp-pasv-proxy diagnose: The server did not accept the login as "alice": "530 Authentication failed.". Passive mode cannot be checked without a login.\n')
  t.ok(Date.now() - started >= 2_900, 'pyftpdlib held its answer about 3 s, as it does by default')
  const j = await diagnoseCli(['ftp://alice:wrong@127.0.0.1:27620', '--json'])
  t.match(JSON.parse(j.stdout.toString()), { login: { user: 'alice', ok: false, reply: '530 Authentication failed.' }, verdict: { fault: 'login_failed' } })
})

t.test('the right password: healthy', async (t) => {
  const r = await diagnoseCli(['ftp://alice:right@127.0.0.1:27620'])
  t.equal(r.code, 0, r.stdout.toString() + server.log())
  t.match(r.stdout.toString(), /^ {2}login {4}230 Login successful\.$/m)
  t.match(r.stdout.toString(), /^Root cause: Passive mode works: PASV to 127\.0\.0\.1:2762\d answers and LIST over it works; EPSV to 127\.0\.0\.1:2762\d answers and LIST over it works\.$/m)
})

t.test('masquerade_address 127.0.0.99 (nothing listens there): the fix names pyftpdlib first', async (t) => {
  const nat = await startPyftpdlib({ port: 27630, passive: '27631-27639', user: 'alice', password: 'right', natAddress: '127.0.0.99' })
  t.teardown(() => nat.stop())
  const r = await diagnoseCli(['ftp://alice:right@127.0.0.1:27630'])
  const out = r.stdout.toString()
  t.equal(r.code, 1, out + nat.log())
  t.match(out, /^Verdict: passive-mode fault: advertised_unreachable, exit 1$/m)
  t.match(out, /^ {2}- PASV: 227 names 127\.0\.0\.99:2763\d, a loopback address, differs from the control address 127\.0\.0\.1$/m)
  const fixes = out.split('Fix (any one of):\n')[1]?.split('\n').filter((l) => l.startsWith('  - ')) ?? []
  t.equal(fixes[0], "  - pyftpdlib: FTPHandler.masquerade_address = '127.0.0.1' (python3 -m pyftpdlib: -n 127.0.0.1)", 'the server the greeting names comes first')
  for (const other of [/^ {2}- vsftpd: pasv_address=127\.0\.0\.1/, /^ {2}- FileZilla Server: .*"Use the following host": 127\.0\.0\.1$/, /^ {2}- IIS FTP: .*"External IP Address of Firewall": 127\.0\.0\.1/]) {
    t.ok(fixes.some((l) => other.test(l)), `the others stay: ${other}`)
  }
})
