// The password need not be in argv, where `ps` shows it to every user of the machine (issue 8,
// finding 10): `diagnose --password-env VAR` reads it from the environment. The built CLI
// against a scripted server on port 0 that records what it is sent; the URL path still works.
import t from 'tap'
import { diagnoseCli, startScripted } from './fixtures/helpers.js'

t.setTimeout(60_000)

/** A server that takes any login and refuses both passive commands; `sent` collects commands. */
async function recording(): Promise<{ port: number; sent: string[] }> {
  const sent: string[] = []
  const server = await startScripted(0, '220 hi', (line, s) => {
    sent.push(line)
    s.write(line.startsWith('USER') ? '331 Password?\r\n' : line.startsWith('PASS') ? '230 Welcome.\r\n' : line === 'QUIT' ? '221 Bye.\r\n' : '502 Not here.\r\n')
  })
  t.teardown(() => server.close())
  return { port: server.port, sent }
}

// Characters a URL would need %-escaped, and a space: taken as they are from the environment.
const PASSWORD = 's3cr:t@ p%41ss'

t.test('--password-env VAR: the server receives the password held by VAR; it is printed nowhere', async (t) => {
  const server = await recording()
  const r = await diagnoseCli([`ftp://alice@127.0.0.1:${server.port}`, '--password-env', 'DIAG_PASSWORD'], { DIAG_PASSWORD: PASSWORD })
  t.equal(r.code, 1, 'logged in; both passive commands refused: no_passive_mode')
  t.same(server.sent.slice(0, 2), ['USER alice', `PASS ${PASSWORD}`])
  t.match(r.stdout.toString(), /^Verdict: passive-mode fault: no_passive_mode, exit 1$/m)
  t.notMatch(r.stdout.toString() + r.stderr.toString(), /s3cr/, 'the password is printed nowhere')
})

t.test('the password in the URL still works', async (t) => {
  const server = await recording()
  const r = await diagnoseCli([`ftp://alice:s3cr%3At%40%20p%2541ss@127.0.0.1:${server.port}`])
  t.equal(r.code, 1, r.stderr.toString())
  t.match(r.stdout.toString(), /^Verdict: passive-mode fault: no_passive_mode, exit 1$/m)
  t.same(server.sent.slice(0, 2), ['USER alice', `PASS ${PASSWORD}`])
})

t.test('--password-env naming an unset variable, or a password given twice: exit 2, nothing sent', async (t) => {
  const server = await recording()
  const unset = await diagnoseCli([`ftp://alice@127.0.0.1:${server.port}`, '--password-env', 'DIAG_PASSWORD'])
  t.equal(unset.code, 2)
  t.match(unset.stderr.toString(), /^ftp-pasv-proxy diagnose: --password-env: DIAG_PASSWORD is not set in the environment\nusage: /)
  const twice = await diagnoseCli([`ftp://alice:other@127.0.0.1:${server.port}`, '--password-env', 'DIAG_PASSWORD'], { DIAG_PASSWORD: PASSWORD })
  t.equal(twice.code, 2)
  t.match(twice.stderr.toString(), /the URL has a password and --password-env names DIAG_PASSWORD too/)
  t.notMatch(twice.stderr.toString(), /other|s3cr/, 'neither password repeated')
  t.same(server.sent, [], 'no connection made')
})

t.test('diagnose --help documents --password-env and exits 0', async (t) => {
  const r = await diagnoseCli(['--help'])
  t.equal(r.code, 0)
  t.equal(r.stderr.toString(), '')
  t.match(r.stdout.toString(), /^usage: ftp-pasv-proxy diagnose ftp:\/\/\[user\[:password\]@\]host\[:port\]\[\/dir\] \[--password-env VAR\]/)
  t.match(r.stdout.toString(), /^ {2}--password-env VAR {3}take the password from the environment variable VAR/m)
})
