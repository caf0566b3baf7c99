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
const serverReplies = (pasv: string, epsv: string): Buffer =>
  L(
    '220-Welcome \xff\xfb\x01 to the test server\r\n' + // Telnet IAC WILL ECHO inside a multi-line reply
      '220 ready\r\n' +
      '331 Please specify the password.\r\n' +
      '230 Login successful.\r\n' +
      '211-Features:\r\n EPSV\r\n PASV\r\n211 End\r\n' +
      pasv +
      epsv +
      '250 Directory successfully changed to caf\xe9.\r\n' +
      '211-Status:\n 227 is not a reply here\n211 End of status\n' + // bare LF line ends
      '221 Goodbye.\r\n',
  )
const FROM_SERVER = serverReplies(
  `227 Entering Passive Mode (127,0,0,99,${p1},${p2})\r\n`,
  `229 Entering Extended Passive Mode (!!!${dataPort}!)\r\n`,
)
const EXPECTED_TO_CLIENT = serverReplies(
  '227 Entering Passive Mode (127,0,0,1,89,117).\r\n',
  '229 Entering Extended Passive Mode (|||22901|)\r\n',
)

async function run(split: number): Promise<{ toClient: Buffer; toServer: Buffer }> {
  const h = sessionHarness(['--passive-ports', `${POOL_PORT}-${POOL_PORT}`])
  const toClient = collect(h.client)
  const toServer = collect(h.server)
  const cs = Math.min(split, COMMANDS.length)
  h.client.write(COMMANDS.subarray(0, cs))
  h.server.write(FROM_SERVER.subarray(0, split))
  await new Promise((r) => setImmediate(r))
  h.client.write(COMMANDS.subarray(cs))
  h.client.end()
  h.server.write(FROM_SERVER.subarray(split))
  h.server.end()
  const out = { toClient: await toClient, toServer: await toServer }
  await h.session.done
  t.equal(h.pool.inUse, 0, `pool released after split ${split}`)
  return out
}

t.test('split at every byte position', async (t) => {
  let mismatches = 0
  for (let split = 0; split <= FROM_SERVER.length; split++) {
    const { toClient, toServer } = await run(split)
    if (!toClient.equals(EXPECTED_TO_CLIENT) || !toServer.equals(COMMANDS)) {
      mismatches++
      t.equal(toClient.toString('latin1'), EXPECTED_TO_CLIENT.toString('latin1'), `to client, split ${split}`)
      t.equal(toServer.toString('latin1'), COMMANDS.toString('latin1'), `to server, split ${split}`)
    }
  }
  t.equal(mismatches, 0, `all ${FROM_SERVER.length + 1} splits give the expected transcript`)
})
