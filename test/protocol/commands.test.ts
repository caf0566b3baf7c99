import t from 'tap'
import { isAborWithoutLf, logSafe, parseCommand } from '../../src/protocol/commands.js'

t.test('verb and argument', async (t) => {
  const table: Array<[Buffer | string, string, string]> = [
    ['RETR file name with spaces.txt\r\n', 'RETR', 'file name with spaces.txt'],
    ['retr x\n', 'RETR', 'x'],
    ['PASV\r\n', 'PASV', ''],
    ['EPSV ALL\r\n', 'EPSV', 'ALL'],
    [Buffer.from([0xff, 0xf4, 0xff, 0xf2, ...Buffer.from('ABOR\r\n')]), 'ABOR', ''], // IAC IP IAC DM
    [Buffer.from([0xff, 0xf4, 0xff, ...Buffer.from('ABOR\r\n')]), 'ABOR', ''], // DM lost as urgent data
    ['ABOR\r', 'ABOR', ''], // LF lost as urgent data
    [Buffer.from([...Buffer.from('STOR '), 0xe9, 0x74, 0xe9, 0x0d, 0x0a]), 'STOR', '\u00e9t\u00e9'], // latin1, bytes kept
    ['\r\n', '', ''],
  ]
  for (const [line, verb, arg] of table) {
    const c = parseCommand(typeof line === 'string' ? Buffer.from(line, 'latin1') : line)
    t.same(c, { verb, arg }, JSON.stringify(line.toString()))
  }
})

t.test('the log-safe view hides secrets', async (t) => {
  t.same(logSafe(parseCommand(Buffer.from('PASS hunter2\r\n'))), { verb: 'PASS', arg: '****' })
  t.same(logSafe(parseCommand(Buffer.from('ACCT secret\r\n'))), { verb: 'ACCT', arg: '****' })
  t.same(logSafe(parseCommand(Buffer.from('USER alice\r\n'))), { verb: 'USER', arg: 'alice' })
  t.same(logSafe(parseCommand(Buffer.from('PASV\r\n'))), { verb: 'PASV' })
})

t.test('ABOR without its LF', async (t) => {
  t.ok(isAborWithoutLf(Buffer.from('ABOR\r')))
  t.ok(isAborWithoutLf(Buffer.from([0xff, 0xf4, 0xff, ...Buffer.from('ABOR\r')])))
  t.notOk(isAborWithoutLf(Buffer.from('STOR ABOR\r')))
  t.notOk(isAborWithoutLf(Buffer.from('LIST\r')))
})
