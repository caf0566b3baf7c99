// A recorded control exchange fed split at every byte position gives output byte-identical to a
// fixed expected transcript (undici test/fuzzing/server/server-fuzz-split-data.js).
import net from 'node:net'
import t from 'tap'
import { collect, sessionHarness } from '../fixtures/session-harness.js'

// This file's ports: the single pool port makes the rewritten replies fixed.
const POOL_PORT = 22901 // = 89 * 256 + 117

const dataServer = net.createServer((s) => s.on('error', () => {}))
await new Promise<void>((resolve) => dataServer.listen(0, '127.0.0.1', resolve))
t.teardown(() => dataServer.close())
const dataPort = (dataServer.address() as net.AddressInfo).port
const p1 = dataPort >> 8
const p2 = dataPort & 255

const L = (s: string): Buffer => Buffer.from(s, 'latin1')
const COMMANDS = L('USER anonymous\r\nPASS secret\r\nFEAT\r\nPASV\r\nEPSV\r\nCWD caf\xe9\r\nSTAT\r\nQUIT\r\n')
// The greeting, then one reply per command, in order.
const serverReplies = (pasv: string, epsv: string): string[] => [
  '220-Welcome \xff\xfb\x01 to the test server\r\n' + // Telnet IAC WILL ECHO inside a multi-line reply
    '220 ready\r\n',
  '331 Please specify the password.\r\n',
  '230 Login successful.\r\n',
  '211-Features:\r\n EPSV\r\n PASV\r\n211 End\r\n',
  pasv,
  epsv,
  '250 Directory successfully changed to caf\xe9.\r\n',
  '211-Status:\n 227 is not a reply here\n211 End of status\n', // bare LF line ends
  '221 Goodbye.\r\n',
]
const FROM_SERVER = serverReplies(
  `227 Entering Passive Mode (127,0,0,99,${p1},${p2})\r\n`,
  `229 Entering Extended Passive Mode (!!!${dataPort}!)\r\n`,
)
const SERVER_BYTES = L(FROM_SERVER.join(''))
const EXPECTED_TO_CLIENT = L(
  serverReplies('227 Entering Passive Mode (127,0,0,1,89,117).\r\n', '229 Entering Extended Passive Mode (|||22901|)\r\n').join(''),
)

async function run(split: number): Promise<{ toClient: Buffer; toServer: Buffer }> {
  const h = sessionHarness(['--passive-ports', `${POOL_PORT}-${POOL_PORT}`])
  const toClient = collect(h.client)
  const toServer = collect(h.server)
  // The server answers each command once it has it, as a real one does (the proxy holds the
  // commands behind a passive request until its reply is rewritten); its byte stream is cut
  // in two at `split`, wherever that falls.
  let sent = 0
  const send = async (reply: string): Promise<void> => {
    const bytes = L(reply)
    const cut = split - sent
    sent += bytes.length
    if (cut <= 0 || cut >= bytes.length) {
      h.server.write(bytes)
      return
    }
    h.server.write(bytes.subarray(0, cut))
    await new Promise((r) => setImmediate(r))
    h.server.write(bytes.subarray(cut))
  }
  // One reply per command line, in order, each write finished before the next begins.
  let answered = 0
  let queue = send(FROM_SERVER[0] as string)
  h.server.on('data', (c: Buffer) => {
    for (const b of c) {
      if (b !== 0x0a) continue
      queue = queue.then(async () => {
        answered++
        await send(FROM_SERVER[answered] as string)
        if (answered === FROM_SERVER.length - 1) h.server.end()
      })
    }
  })
  await queue
  const cs = Math.min(split, COMMANDS.length)
  h.client.write(COMMANDS.subarray(0, cs))
  await new Promise((r) => setImmediate(r))
  h.client.write(COMMANDS.subarray(cs))
  h.client.end()
  const out = { toClient: await toClient, toServer: await toServer }
  await h.session.done
  t.equal(h.pool.inUse, 0, `pool released after split ${split}`)
  return out
}

t.test('split at every byte position', async (t) => {
  let mismatches = 0
  for (let split = 0; split <= SERVER_BYTES.length; split++) {
    const { toClient, toServer } = await run(split)
    if (!toClient.equals(EXPECTED_TO_CLIENT) || !toServer.equals(COMMANDS)) {
      mismatches++
      t.equal(toClient.toString('latin1'), EXPECTED_TO_CLIENT.toString('latin1'), `to client, split ${split}`)
      t.equal(toServer.toString('latin1'), COMMANDS.toString('latin1'), `to server, split ${split}`)
    }
  }
  t.equal(mismatches, 0, `all ${SERVER_BYTES.length + 1} splits give the expected transcript`)
})
