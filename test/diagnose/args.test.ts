// `diagnose` arguments: the URL's parts, decoded; flags; every usage error says what is wrong
// and never repeats a password.
import t from 'tap'
import { parseDiagnoseArgs } from '../../src/diagnose/args.js'

t.test('URLs and flags that are accepted', async (t) => {
  const table: Array<[string[], Record<string, unknown>]> = [
    [['ftp://ftp.example'], { host: 'ftp.example', port: 21, user: 'anonymous', password: 'anonymous@', path: null, json: false, timeoutMs: 10_000 }],
    [['ftp://127.0.0.1:2121/', '--json'], { host: '127.0.0.1', port: 2121, path: null, json: true }],
    [['ftp://alice@h'], { user: 'alice', password: 'anonymous@' }],
    [['ftp://al%20ice:p%40ss%3Aw0rd@h:21'], { user: 'al ice', password: 'p@ss:w0rd', port: 21 }],
    [['ftp://[::1]:2121'], { host: '::1', port: 2121 }],
    [['ftp://h/pub/my%20dir'], { path: 'pub/my dir' }],
    [['--timeout', '250ms', 'ftp://h'], { timeoutMs: 250 }],
    [['ftp://h', '--timeout=2'], { timeoutMs: 2000 }],
    [['ftp://h', '--timeout', '1m'], { timeoutMs: 60_000 }],
    [['ftp://h', '--timeout', '10m'], { timeoutMs: 600_000 }],
  ]
  for (const [argv, want] of table) {
    const r = parseDiagnoseArgs(argv)
    t.ok(r.ok, argv.join(' '))
    if (r.ok) t.match(r.options, want, argv.join(' '))
  }
})

t.test('--password-env VAR: the password from the environment, never repeated in a message', async (t) => {
  const env = { DIAG_PW: 'p@ss:w0rd', EMPTY: '', CRLF: 'x\r\nDELE y' }
  const ok = parseDiagnoseArgs(['ftp://alice@h', '--password-env', 'DIAG_PW'], env)
  t.ok(ok.ok)
  if (ok.ok) t.match(ok.options, { user: 'alice', password: 'p@ss:w0rd' })
  const anon = parseDiagnoseArgs(['--password-env=DIAG_PW', 'ftp://h'], env)
  t.ok(anon.ok)
  if (anon.ok) t.match(anon.options, { user: 'anonymous', password: 'p@ss:w0rd' }, 'anonymous with the given password')
  const table: Array<[string[], RegExp]> = [
    [['ftp://alice@h', '--password-env', 'NOT_SET'], /^--password-env: NOT_SET is not set in the environment$/],
    [['ftp://alice@h', '--password-env', 'EMPTY'], /^--password-env: EMPTY is empty$/],
    [['ftp://alice@h', '--password-env', 'CRLF'], /^--password-env: CRLF must not contain CR or LF$/],
    [['ftp://alice:hunter2@h', '--password-env', 'DIAG_PW'], /^the URL has a password and --password-env names DIAG_PW too: give the password one way$/],
    [['ftp://alice@h', '--password-env', 'hunter2!'], /^--password-env takes the name of an environment variable/],
    [['ftp://alice@h', '--password-env'], /--password-env/],
  ]
  for (const [argv, re] of table) {
    const r = parseDiagnoseArgs(argv, env)
    t.notOk(r.ok, argv.join(' '))
    if (!r.ok) {
      t.match(r.message, re, argv.join(' '))
      t.notMatch(r.message, /hunter2|p@ss:w0rd|DELE/, 'no password repeated')
    }
  }
  const noEnv = parseDiagnoseArgs(['ftp://alice@h', '--password-env', 'DIAG_PW'])
  t.notOk(noEnv.ok, 'the environment is read only when given')
})

t.test('usage errors', async (t) => {
  const table: Array<[string[], RegExp]> = [
    [[], /^no URL given$/],
    [['--json'], /^no URL given$/],
    [['ftp://a', 'ftp://b'], /^one URL only, got 2: ftp:\/\/a ftp:\/\/b$/],
    [['ftp://h', '--verbose'], /Unknown option '--verbose'/],
    [['ftp://h', '--timeout'], /--timeout/],
    [['http://h'], /^the URL must start with ftp:\/\/ \(got http:\/\/\)$/],
    [['ftp.example.com'], /^"ftp\.example\.com" is not a URL/],
    [['ftp://bob:hunter2@exa mple'], /^"ftp:\/\/\*\*\*\*@exa mple" is not a URL/],
    [['ftp://h:0'], /^port 0 cannot be dialled/],
    [['ftp://h:70000'], /is not a URL/],
    [['ftp://h:21%'], /is not a URL/],
    [['ftp://h', '--timeout', '3x'], /^--timeout "3x" is not a duration; use 250ms, 3s, 1m or whole seconds$/],
    [['ftp://h', '--timeout', '0s'], /^--timeout 0s must be more than 0$/],
    [['ftp://h', '--timeout', '11m'], /^--timeout 11m is above the limit of 10m$/],
    [['ftp://a%0d%0aDELE%20x@h'], /^user, password and path must not contain CR or LF$/],
    [['ftp://h/a%0aDELE'], /CR or LF/],
    [['ftp://u:%E0%A4%A@h'], /malformed %-escape/],
    [['ftp://'], /^"ftp:\/\/" is not a URL/],
  ]
  for (const [argv, re] of table) {
    const r = parseDiagnoseArgs(argv)
    t.notOk(r.ok, argv.join(' '))
    if (!r.ok) {
      t.match(r.message, re, argv.join(' '))
      t.notMatch(r.message, /hunter2/, 'the password is not repeated')
    }
  }
})
