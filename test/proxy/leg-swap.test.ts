// The seam FTPS needs: a control leg's stream replaced in the middle of a session (a TLS socket
// made from the plain one, after AUTH TLS), with commands and replies in flight. Each case swaps
// a leg onto a new in-memory stream and checks that every byte arrives once, in order, on the
// right stream: the unread part of a line (in the framer), whole lines not yet taken (held back
// by flow control), replies split across the swap, and the old stream's later close.
import type { Duplex } from 'node:stream'
import t from 'tap'
import { DEFAULT_LIMITS } from '../../src/proxy/session-context.js'
import { duplexPair } from '../fixtures/duplex-pair.js'
import { sessionHarness } from '../fixtures/session-harness.js'

/** Every byte written to `stream` from now on, as latin1 text so far. */
function recorder(stream: Duplex): () => string {
  const chunks: Buffer[] = []
  stream.on('data', (c: Buffer) => chunks.push(c))
  return () => Buffer.concat(chunks).toString('latin1')
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r))
async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

t.test('client leg swapped with commands in flight and half a command unread', async (t) => {
  // One unanswered command at a time: NOOP waits as a whole line behind USER's reply.
  const h = sessionHarness([], undefined, { ...DEFAULT_LIMITS, maxPendingCommands: 1 })
  const toServer = recorder(h.server)
  const oldClient = recorder(h.client)
  h.server.write('220 ready\r\n')
  await until('greeting', () => oldClient().includes('220 ready'))
  h.client.write('USER anna\r\nNOOP\r\nNO')
  await until('USER forwarded', () => toServer() === 'USER anna\r\n')
  await settle()

  const [newClient, newClientSide] = duplexPair()
  const newReplies = recorder(newClient)
  let carried = ''
  h.session.swapLeg('client', (unread) => {
    carried = unread.toString('latin1')
    newClientSide.unshift(unread)
    return newClientSide
  })
  t.equal(carried, 'NOOP\r\nNO', 'the unread whole line and half line are carried to the new stream')
  newClient.write('OP\r\nQUIT\r\n')
  h.server.write('331 password please\r\n')
  await until('NOOP forwarded', () => toServer() === 'USER anna\r\nNOOP\r\n')
  h.server.write('200 ok\r\n')
  await until('second NOOP', () => toServer() === 'USER anna\r\nNOOP\r\nNOOP\r\n')
  h.server.write('200 ok again\r\n')
  await until('QUIT', () => toServer().endsWith('QUIT\r\n'))
  h.server.write('221 bye\r\n')
  await until('replies on the new leg', () => newReplies().includes('221 bye'))
  t.equal(toServer(), 'USER anna\r\nNOOP\r\nNOOP\r\nQUIT\r\n', 'the server got each command once, in order')
  t.equal(newReplies(), '331 password please\r\n200 ok\r\n200 ok again\r\n221 bye\r\n', 'every reply after the swap, once, in order, on the new leg')
  t.equal(oldClient(), '220 ready\r\n', 'the old stream got nothing after the swap')
})

t.test('server leg swapped with a multi-line reply split across the swap', async (t) => {
  const h = sessionHarness([])
  const client = recorder(h.client)
  const oldServer = recorder(h.server)
  h.server.write('220 ready\r\n')
  h.client.write('USER anna\r\nPASS secret\r\n')
  await until('both forwarded', () => oldServer() === 'USER anna\r\nPASS secret\r\n')
  h.server.write('331 password please\r\n230-welcome\r\n230')
  await until('331 passed', () => client().includes('331 password please'))

  const [newServer, newServerSide] = duplexPair()
  const toNewServer = recorder(newServer)
  h.session.swapLeg('server', (unread) => {
    newServerSide.unshift(unread)
    return newServerSide
  })
  newServer.write('-second line\r\n230 logged in\r\n')
  await until('230 passed', () => client().includes('230 logged in'))
  t.equal(client(), '220 ready\r\n331 password please\r\n230-welcome\r\n230-second line\r\n230 logged in\r\n', 'the reply split by the swap reaches the client whole, once')

  h.client.write('NOOP\r\n')
  await until('NOOP on the new leg', () => toNewServer() === 'NOOP\r\n')
  t.equal(oldServer(), 'USER anna\r\nPASS secret\r\n', 'nothing more went to the old stream')

  // The old stream closing now (a TLS socket owns the transport) does not end the session.
  h.server.destroy()
  await settle()
  newServer.write('200 still here\r\n')
  await until('NOOP answered', () => client().includes('200 still here'))
  h.client.write('QUIT\r\n')
  await until('QUIT on the new leg', () => toNewServer().endsWith('QUIT\r\n'))
  newServer.write('221 bye\r\n')
  newServer.end()
  await h.session.done
  t.ok(client().endsWith('200 still here\r\n221 bye\r\n'), 'the session ends by the new leg')
})
