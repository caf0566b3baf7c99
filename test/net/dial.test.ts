// Dialling with a deadline: a connect that completes while the event loop is stalled is a
// connect, not a timeout; a refusal is a refusal (timeouts by a dropped SYN are in
// test/e2e/metrics-scenario.test.ts, inside a namespace).
import net from 'node:net'
import t from 'tap'
import { connectTo, dialFirst } from '../../src/net/dial.js'
import { DialError } from '../../src/errors.js'

async function listener(): Promise<net.Server> {
  const server = net.createServer((s) => s.destroy())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return server
}

t.test('a connect that completes during a stall longer than the deadline succeeds', async (t) => {
  const server = await listener()
  t.teardown(() => server.close())
  const { port } = server.address() as net.AddressInfo
  const dialled = connectTo('127.0.0.1', port, undefined, 50)
  // The kernel completes the handshake while this loop is busy; the timer is due before the
  // loop next polls.
  const until = Date.now() + 300
  while (Date.now() < until);
  const socket = await dialled
  t.equal(socket.remotePort, port, 'connected to the listener')
  socket.destroy()
})

t.test('a refused connect is reported as refused, with each attempt', async (t) => {
  const server = await listener()
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  const err = await dialFirst([{ host: '127.0.0.1', kind: 'advertised' }], port, undefined, 2000).catch((e: unknown) => e)
  t.ok(err instanceof DialError)
  t.equal((err as DialError).reason, 'refused')
  t.equal((err as DialError).attempts.length, 1)
})

t.test('a deadline whose timer fires late (the loop stalled) grants the full time once more, then expires', async (t) => {
  const { Deadline } = await import('../../src/deadline.js')
  const started = performance.now()
  let expiredAt = 0
  const expired = new Promise<void>((resolve) => {
    // eslint-disable-next-line no-new
    new Deadline(50, () => {
      expiredAt = performance.now() - started
      resolve()
    })
  })
  const until = Date.now() + 300
  while (Date.now() < until);
  await expired
  t.ok(expiredAt >= 340, `expired after the stall and 50 ms more (${expiredAt.toFixed(0)} ms)`)
  t.ok(expiredAt < 5000, 'and did expire')
})
