import t from 'tap'
import { isAborWithoutLf, logSafe, parseCommand, parseEprt, parsePort } from '../../src/protocol/commands.js'

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

t.test('PORT and EPRT', async (t) => {
  t.same(parsePort('127,0,0,1,117,48'), { host: '127.0.0.1', port: 30000, family: 4 })
  t.same(parseEprt('|1|127.0.0.1|30000|'), { host: '127.0.0.1', port: 30000, family: 4 })
  t.same(parseEprt('!2!::1!30001!'), { host: '::1', port: 30001, family: 6 })
  const badPort = ['127,0,0,1,117', '127,0,0,1,256,0', '127,0,0,1,0,0', '-1,0,0,1,1,1', 'a,b,c,d,e,f', '', '127,0,0,1,1,1,1']
  for (const a of badPort) t.equal(parsePort(a), null, `PORT ${a}`)
  const badEprt = ['|3|127.0.0.1|30000|', '|1|::1|30000|', '|2|127.0.0.1|30000|', '|1|127.0.0.1|0|', '|1|127.0.0.1|70000|', '|1|127.0.0.1|30000', '1|127.0.0.1|30000|', '|1|300.0.0.1|30000|', ' ', '|1|127.0.0.1|3x|']
  for (const a of badEprt) t.equal(parseEprt(a), null, `EPRT ${a}`)
})
