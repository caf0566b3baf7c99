// diagnose against a real pyftpdlib 1.5.7 (Debian python3-pyftpdlib), which answers a wrong
// password after 3 s (FTPHandler.auth_failed_timeout) on purpose. With its default timeout,
// diagnose must report that 530 as a refused login, not as silence (issue 8, finding 11).
// Ports: control 27620, passive 27621-27629.
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
