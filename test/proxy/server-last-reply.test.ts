// The server sends a large last reply and its FIN in one go while the client is not reading. The
// proxy frames server lines only as the client takes them, so at the FIN most of the reply is
// still unread in the proxy: it must still reach the client whole once the client reads, then the
// session ends. (When server framing became lazy, the FIN ended the session and the rest of the
// reply was dropped.) In memory, over the pair that pushes back.
import { createHash } from 'node:crypto'
import t from 'tap'
import { boundedSessionHarness } from '../fixtures/session-harness.js'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const REPLY = Buffer.from(`211-status follows\r\n${' a line of a long status reply\r\n'.repeat(16_384)}211 End of status\r\n`)

t.test('a 512 KiB last reply and the FIN at once, the client reading later: every byte, then the end', async (t) => {
  const h = boundedSessionHarness(['--close-timeout', '20s'], { client: { capacity: 16_384 }, server: { capacity: 1 << 20 } })
  const chunks: Buffer[] = []
  h.client.on('data', (c: Buffer) => chunks.push(c))
  const ended = new Promise<void>((resolve) => h.client.on('end', resolve))
  h.server.write('220 ready\r\n')
  h.client.write('STAT\r\n')
  await new Promise((r) => setTimeout(r, 50))
  h.client.stopReading()
  h.server.write(REPLY)
  h.server.end()
  await new Promise((r) => setTimeout(r, 200))
  h.client.resumeReading()
  let timer: NodeJS.Timeout | undefined
  const inTime = await Promise.race([ended.then(() => true), new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), 10_000) })])
  clearTimeout(timer)
  t.ok(inTime, 'the client leg ends after the reply')
  const got = Buffer.concat(chunks)
  t.equal(got.subarray(0, 11).toString(), '220 ready\r\n', 'the greeting first')
  t.equal(sha(got.subarray(11)), sha(REPLY), 'then the whole reply, byte for byte')
  h.client.end()
  await h.session.done
})
