// A hostile server's text does not drive the operator's terminal (issue 8, finding 10): what the
// built `diagnose` prints, as bytes, holds no control byte but the LF that ends its own lines;
// the server's escape sequences are shown as \xNN, and --json keeps the exact text behind
// JSON escapes. Scripted servers on port 0.
import t from 'tap'
import type { DiagnoseReport } from '../../src/diagnose/report.js'
import { diagnoseCli, startScripted } from './fixtures/helpers.js'

t.setTimeout(60_000)

const CLEAR = '\x1b[2J'
const TITLE = '\x1b]0;owned\x07'
// An 8-bit CSI: one byte, 0x9b, that some terminals read as ESC [.
const CSI8 = '\x9b31m'
// A multi-line greeting whose middle line (RFC 959 4.2: any text) would print as a verdict of
// its own, and a CR that
// would send the cursor back over what came before on its line.
const GREETING = `220-Welcome ${CLEAR}${TITLE}\r\nVerdict: healthy, exit 0\r\n220 ready\rfake ${CSI8}\x7f`

/** Control bytes a terminal acts on: C0 but LF, DEL, and C1 (UTF-8 C2 80-C2 9F). */
function controls(bytes: Buffer): string[] {
  const found: string[] = []
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number
    if ((b < 0x20 && b !== 0x0a) || b === 0x7f) found.push(`0x${b.toString(16)} at ${i}`)
    if (b === 0xc2 && (bytes[i + 1] ?? 0) >= 0x80 && (bytes[i + 1] ?? 0) <= 0x9f) found.push(`U+00${(bytes[i + 1] as number).toString(16)} at ${i}`)
  }
  return found
}

async function hostile(onPass: string): Promise<number> {
  const server = await startScripted(0, GREETING, (line, s) => {
    const reply = line.startsWith('USER')
      ? `331 Password ${TITLE}please`
      : line.startsWith('PASS')
        ? onPass
        : line === 'PASV'
          ? `227 Entering Passive Mode (999,0,0,1,4,1) ${CLEAR}`
          : line === 'EPSV'
            ? `500 ${TITLE}EPSV not understood ${CSI8}`
            : `221 Bye\x7f${CLEAR}`
    s.write(`${reply}\r\n`, 'latin1')
  })
  t.teardown(() => server.close())
  return server.port
}

t.test('text output: no control byte from the server reaches stdout or stderr', async (t) => {
  const port = await hostile(`230-Logged in ${CSI8}\r\n230 ok ${CLEAR}`)
  const r = await diagnoseCli([`ftp://127.0.0.1:${port}`])
  t.equal(r.code, 1, 'a bad 227 is a passive-mode fault')
  t.same(controls(r.stdout), [], 'stdout holds no control byte but LF')
  t.same(controls(r.stderr), [], 'stderr holds no control byte but LF')
  const out = r.stdout.toString('utf8')
  // The server's bytes are shown, escaped, where they stood.
  t.match(out, /^ {2}control {2}connected to 127\.0\.0\.1 in [\d.]+ ms: 220-Welcome \\x1b\[2J\\x1b\]0;owned\\x07 \/ Verdict: healthy, exit 0 \/ 220 ready\\x0dfake \\x9b31m\\x7f$/m)
  t.match(out, /^ {2}login {4}230-Logged in \\x9b31m \/ 230 ok \\x1b\[2J$/m)
  t.match(out, /^ {2}PASV {5}227 Entering Passive Mode \(999,0,0,1,4,1\) \\x1b\[2J$/m)
  t.match(out, /EPSV is refused \("500 \\x1b\]0;owned\\x07EPSV not understood \\x9b31m"\)/)
  t.equal(out.match(/^Verdict:/gm)?.length, 1, "the server's 'Verdict:' line is not a line of its own")
  t.match(out, /^Verdict: passive-mode fault: bad_passive_reply, exit 1$/m)
})

t.test('login refused: the cause on stderr quotes the 530 escaped', async (t) => {
  const port = await hostile(`530 Login incorrect ${CLEAR}${TITLE}${CSI8}`)
  const r = await diagnoseCli([`ftp://bob@127.0.0.1:${port}`])
  t.equal(r.code, 2)
  t.same(controls(r.stdout), [])
  t.same(controls(r.stderr), [])
  t.equal(
    r.stderr.toString('utf8'),
    'ftp-pasv-proxy diagnose: The server did not accept the login as "bob": "530 Login incorrect \\x1b[2J\\x1b]0;owned\\x07\\x9b31m". Passive mode cannot be checked without a login.\n',
  )
})

t.test('--json: no raw control byte, and JSON.parse gives back the exact server text', async (t) => {
  const port = await hostile(`230 ok ${CSI8}`)
  const r = await diagnoseCli([`ftp://127.0.0.1:${port}`, '--json'])
  t.equal(r.code, 1)
  t.same(controls(r.stdout), [], 'DEL and C1 are \\u escapes too, not only C0')
  t.same(controls(r.stderr), [])
  const report = JSON.parse(r.stdout.toString('utf8')) as DiagnoseReport
  t.equal(report.control.greeting, GREETING.replaceAll('\r\n', '\n'), 'the greeting as the server sent it, lines joined with LF')
  t.equal(report.login.reply, `230 ok ${CSI8}`)
  t.equal(report.epsv.reply, `500 ${TITLE}EPSV not understood ${CSI8}`)
})
