// The server sends a large last reply and leaves at once (a 1 MiB multi-line reply, then its
// FIN), while the client reads slowly. The proxy frames server lines only as the client takes
// them, so at the FIN much of the reply is still unread in the proxy: it must still reach the
// client whole, then the session ends. (Found when server framing became lazy: the FIN ended
// the session with the rest of the reply dropped.) Ports: 26700-26799.
import net from 'node:net'
import t from 'tap'
import { startProxy } from '../fixtures/proxy.js'
import { sha, startFaultServer, waitFor } from './helpers.js'

t.setTimeout(60_000)
const MIB = 1024 * 1024
const REPLY = Buffer.from(`211-status follows\r\n${' a line of a long status reply\r\n'.repeat(MIB / 32)}211 End of status\r\n`)

t.test('a 1 MiB last reply, then the server leaves: the slow client gets every byte, then the close', async (t) => {
  const server = await startFaultServer({
    port: 26700,
    onCommand: (cmd, s) => {
      if (cmd.verb !== 'STAT') return 'default'
      s.write(REPLY)
      s.control.end()
      return undefined
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', `127.0.0.1:${server.port}`, '--passive-ports', '26710-26719', '--close-timeout', '10s'])
  t.teardown(() => p.close())
  const c = net.connect({ host: p.host, port: p.port })
  t.teardown(() => c.destroy())
  const chunks: Buffer[] = []
  let closed = false
  c.on('data', (d: Buffer) => {
    chunks.push(d)
    // A slow reader: 64 KiB at a time, with a pause, so the proxy holds the reply back.
    c.pause()
    setTimeout(() => c.resume(), 20)
  })
  c.on('close', () => (closed = true))
  c.on('error', () => {})
  await waitFor(() => Buffer.concat(chunks).includes('220 '), 5000)
  c.write('USER anonymous\r\nSTAT\r\n')
  t.ok(await waitFor(() => closed, 30_000), 'the session ends after the reply')
  const got = Buffer.concat(chunks)
  const at = got.indexOf('211-status follows')
  t.ok(at !== -1, 'the reply began')
  t.equal(sha(got.subarray(at)), sha(REPLY), 'the whole reply reached the client, byte for byte, before the close')
  t.ok(await waitFor(() => p.proxy.sessionCount === 0, 5000), 'the session is gone')
})
