import t from 'tap'
import { BadPassiveReplyError } from '../../src/errors.js'
import { format227, format229, parse227, parse229, ReplyAssembler, replyText } from '../../src/protocol/replies.js'
import { LineFramer } from '../../src/protocol/line-framer.js'

t.test('227 forms seen in the wild', async (t) => {
  const table: Array<[string, string, number]> = [
    ['227 Entering Passive Mode (172,16,40,222,90,160)', '172.16.40.222', 23200],
    ['227 Entering Passive Mode (172,16,40,222,90,160).', '172.16.40.222', 23200], // ProFTPD
    ['227 Entering Passive Mode 172,16,40,222,90,160', '172.16.40.222', 23200], // no parentheses
    ['227 Entering Passive Mode. 217,69,76,44,156,68', '217.69.76.44', 156 * 256 + 68],
    ['227 =10,100,20,222,90,216', '10.100.20.222', 23256],
    ['227 Entering passive mode (h1,h2..) = 127,0,0,1,4,1', '127.0.0.1', 1025],
    ['227-Passive\n227 (10,0,0,1,0,21)', '10.0.0.1', 21], // tuple on the last line of a multi-line 227
    ['227-Entering Passive Mode (10,0,0,2,1,0)\n227 OK', '10.0.0.2', 256], // tuple on the first line
    ['227 Entering Passive Mode (10, 0, 0, 3, 1, 1)', '10.0.0.3', 257],
  ]
  for (const [text, host, port] of table) t.same(parse227(text), { host, port }, text)
})

t.test('227 bad input is refused, never wrapped', async (t) => {
  const table = [
    '227 Entering Passive Mode (999,0,0,1,4,1)', // octet over 255 (basic-ftp would take 999 & 255)
    '227 Entering Passive Mode (10,0,0,1,256,1)',
    '227 Entering Passive Mode (10,0,0,1,0,0)', // port 0
    '227 Entering Passive Mode (-1,0,0,1,4,1)',
    '227 Entering Passive Mode (10,0,0,1,4)', // five numbers
    '227 Entering Passive Mode (10,0,0,1,4,1,7)', // seven numbers
    '227 Entering Passive Mode',
    '227 Entering Passive Mode (1000,0,0,1,4,1)',
  ]
  for (const text of table) t.throws(() => parse227(text), BadPassiveReplyError, text)
})

t.test('229 with any delimiter from ASCII 33-126', async (t) => {
  for (let d = 33; d <= 126; d++) {
    if (d >= 0x30 && d <= 0x39) continue // a digit cannot delimit digits
    const c = String.fromCharCode(d)
    t.same(parse229(`229 Entering Extended Passive Mode (${c}${c}${c}23200${c})`), { host: null, port: 23200 }, `delimiter ${c}`)
  }
  t.same(parse229('229 Extended Passive mode OK (|||30001|)'), { host: null, port: 30001 }) // pure-ftpd
  t.same(parse229('229-EPSV\n229 ok (|||65535|)'), { host: null, port: 65535 })
})

t.test('229 bad input', async (t) => {
  const table = [
    '229 Entering Extended Passive Mode (|||0|)',
    '229 Entering Extended Passive Mode (|||65536|)',
    '229 Entering Extended Passive Mode (|||abc|)',
    '229 Entering Extended Passive Mode (||23200|)',
    '229 Entering Extended Passive Mode (|!|23200|)',
    '229 Entering Extended Passive Mode',
    '229 Entering Extended Passive Mode (   23200 )',
  ]
  for (const text of table) t.throws(() => parse229(text), BadPassiveReplyError, text)
})

t.test('canonical forms', async (t) => {
  t.equal(format227('127.0.0.1', 30005), '227 Entering Passive Mode (127,0,0,1,117,53).\r\n')
  t.equal(format229(30005), '229 Entering Extended Passive Mode (|||30005|)\r\n')
  t.same(parse227(format227('192.0.2.7', 65535)), { host: '192.0.2.7', port: 65535 })
})

t.test('multi-line replies (RFC 959 4.2)', async (t) => {
  const a = new ReplyAssembler(1024)
  const lines = ['211-Features:\r\n', ' EPSV\r\n', '211 is not the end without a space? it is\r\n']
  t.equal(a.push(Buffer.from(lines[0]!)), null)
  t.equal(a.push(Buffer.from(lines[1]!)), null)
  const r = a.push(Buffer.from(lines[2]!))
  t.equal(r?.code, 211)
  t.equal(r?.lines.length, 3)
  t.equal(replyText(r!), '211-Features:\n EPSV\n211 is not the end without a space? it is')
  // Lines with another code inside a multi-line reply do not end it.
  t.equal(a.push(Buffer.from('230-Welcome\r\n')), null)
  t.equal(a.push(Buffer.from('220 not the end\r\n')), null)
  t.equal(a.push(Buffer.from('230-still going\r\n')), null)
  t.same(a.push(Buffer.from('230 done\r\n'))?.lines.length, 4)
  // A line outside a reply is passed on as is.
  t.same(a.push(Buffer.from('garbage\r\n')), { code: null, lines: [Buffer.from('garbage\r\n')] })
  t.throws(() => {
    const small = new ReplyAssembler(20)
    small.push(Buffer.from('220-0123456789\r\n'))
    small.push(Buffer.from('more than twenty bytes\r\n'))
  })
})

t.test('line framer: bytes kept, bounded', async (t) => {
  const f = new LineFramer({ maxLineBytes: 16 })
  t.same(f.push(Buffer.from('AB')), [])
  t.same(f.push(Buffer.from('C\r\nDE\nF')).map(String), ['ABC\r\n', 'DE\n'])
  t.equal(f.pendingBytes, 1)
  t.same(f.push(Buffer.from([0xff, 0xf4, 0x0a])), [Buffer.from([0x46, 0xff, 0xf4, 0x0a])])
  t.throws(() => f.push(Buffer.alloc(17, 0x41)), { code: 'LINE_TOO_LONG' })
  const g = new LineFramer({ maxLineBytes: 8, acceptBareCr: (b) => b.toString() === 'ABOR\r' })
  t.same(g.push(Buffer.from('ABOR\r')).map(String), ['ABOR\r'])
  t.same(g.push(Buffer.from('LIST\r')), [])
  t.same(g.push(Buffer.from('\n')).map(String), ['LIST\r\n'])
})
