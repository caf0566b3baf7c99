// Pooled reads on a dialled data leg (src/net/pooled-read.ts): every byte arrives once and in order
// while buffers are reused across relays, with a reader that stalls and one that reads slowly; what
// arrives before the relay starts is held, not lost; the FIN is passed on after the last byte.
import { createHash, randomBytes } from 'node:crypto'
import { EventEmitter, once } from 'node:events'
import net from 'node:net'
import t from 'tap'
import { connectTo } from '../../src/net/dial.js'
import { POOLED_BUFFER_BYTES, pooledBuffersFree, pooledBuffersOutstanding, pooledReaderOf, withPooledReads } from '../../src/net/pooled-read.js'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** A server that sends `payload` then its FIN to whoever connects, and the port it listens on. */
async function source(payload: Buffer): Promise<{ port: number; close: () => void }> {
  const server = net.createServer((s) => {
    s.on('error', () => {})
    s.end(payload)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() }
}

/** A connected pair: `near` is written to by the relay, `far` is the reader the test controls. */
async function pair(): Promise<{ near: net.Socket; far: net.Socket; close: () => void }> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const near = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  const [far] = (await once(server, 'connection')) as [net.Socket]
  await once(near, 'connect')
  return { near, far, close: () => server.close() }
}

/** Reads `far` to its end, pausing `stallMs` after every `every` bytes. */
async function drain(far: net.Socket, stallMs: number, every: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let since = 0
  far.on('data', (b: Buffer) => {
    chunks.push(b)
    since += b.length
    if (stallMs > 0 && since >= every) {
      since = 0
      far.pause()
      setTimeout(() => far.resume(), stallMs)
    }
  })
  far.resume()
  await once(far, 'end')
  return Buffer.concat(chunks)
}

t.test('two relays at once, one reading slowly, share the pool: every byte once, in order, and the FIN after it', async (t) => {
  const a = randomBytes(12 * 1024 * 1024 + 17)
  const b = randomBytes(9 * 1024 * 1024 + 5)
  const srcA = await source(a)
  const srcB = await source(b)
  t.teardown(() => {
    srcA.close()
    srcB.close()
  })
  const upA = await connectTo('127.0.0.1', srcA.port, undefined, 5000, true)
  const upB = await connectTo('127.0.0.1', srcB.port, undefined, 5000, true)
  t.ok(pooledReaderOf(upA) !== undefined, 'dialled with a pooled reader')
  // The relay starts later than the connect: the first bytes wait in the reader meanwhile.
  await new Promise((r) => setTimeout(r, 100))
  const pa = await pair()
  const pb = await pair()
  t.teardown(() => {
    pa.close()
    pb.close()
  })
  pooledReaderOf(upA)!.relayTo(pa.near)
  pooledReaderOf(upB)!.relayTo(pb.near)
  const [gotA, gotB] = await Promise.all([drain(pa.far, 20, 2 * POOLED_BUFFER_BYTES), drain(pb.far, 0, 0)])
  t.equal(gotA.length, a.length, 'the slow reader got every byte')
  t.equal(sha(gotA), sha(a), 'in order, none overwritten by a reused buffer')
  t.equal(sha(gotB), sha(b), 'the fast one too')
  t.equal(upA.bytesRead, a.length, 'bytesRead counts what was read (the data meter reads it)')
  t.ok(pooledBuffersFree() > 0, 'buffers went back to the pool')
  upA.destroy()
  upB.destroy()
  pa.near.destroy()
  pb.near.destroy()
})

t.test('a write that says true with its bytes still queued: its buffer is not reused before the write is done', async (t) => {
  // A target whose writes complete 20 ms late while write() returns true, as a socket's do below
  // its high-water mark: each chunk is copied only when its write completes, so a buffer reused
  // for a later read before then would show as changed bytes.
  const payload = randomBytes(8 * 1024 * 1024)
  const src = await source(payload)
  t.teardown(() => src.close())
  const up = await connectTo('127.0.0.1', src.port, undefined, 5000, true)
  const copies: Buffer[] = []
  let ended!: () => void
  const done = new Promise<void>((resolve) => (ended = resolve))
  const target = new EventEmitter() as EventEmitter & { write: (c: Buffer, cb: () => void) => boolean; end: () => void; writableNeedDrain: boolean }
  let pending = 0
  target.writableNeedDrain = false
  target.write = (chunk, cb) => {
    const slot = copies.length
    copies.push(Buffer.alloc(0))
    pending++
    setTimeout(() => {
      copies[slot] = Buffer.from(chunk)
      pending--
      cb()
      if (pending === 0 && finished) ended()
    }, 20)
    return true
  }
  let finished = false
  target.end = () => {
    finished = true
    if (pending === 0) ended()
  }
  pooledReaderOf(up)!.relayTo(target as unknown as net.Socket)
  await done
  t.equal(sha(Buffer.concat(copies)), sha(payload), 'every chunk as it was read')
  up.destroy()
})

t.test('a target that never reads stops the reading: a bounded number of buffers is held', async (t) => {
  const big = randomBytes(64 * 1024 * 1024)
  const src = await source(big)
  t.teardown(() => src.close())
  const up = await connectTo('127.0.0.1', src.port, undefined, 5000, true)
  const p = await pair()
  t.teardown(() => p.close())
  p.far.pause()
  pooledReaderOf(up)!.relayTo(p.near)
  await new Promise((r) => setTimeout(r, 500))
  const read = up.bytesRead
  await new Promise((r) => setTimeout(r, 500))
  t.equal(up.bytesRead, read, 'reading stopped while the target is stuck')
  // The kernel buffers on both sides, plus at most a few pooled buffers in flight: far below 64 MiB.
  t.ok(read < 24 * 1024 * 1024, `read ${read} bytes of 64 MiB`)
  p.far.resume()
  const got = await drain(p.far, 0, 0)
  t.equal(sha(got), sha(big), 'once the target reads, the rest flows, intact')
  up.destroy()
  p.near.destroy()
})

t.test('a reader relays once, and only from the socket it was dialled with', async (t) => {
  const src = await source(Buffer.from('x'))
  t.teardown(() => src.close())
  const up = await connectTo('127.0.0.1', src.port, undefined, 5000, true)
  const p = await pair()
  t.teardown(() => p.close())
  const reader = pooledReaderOf(up)!
  reader.relayTo(p.near)
  t.throws(() => reader.relayTo(p.near), /relays once/)
  const plain = await connectTo('127.0.0.1', src.port, undefined, 5000)
  t.equal(pooledReaderOf(plain), undefined, 'a socket dialled without it reads as before')
  up.destroy()
  plain.destroy()
  p.near.destroy()
})

t.test('an accepted socket moved to pooled reads: the bytes intact, the FIN passed on, the listener still counts it (maxConnections 1)', async (t) => {
  const payload = randomBytes(6 * 1024 * 1024 + 3)
  const accepted: net.Socket[] = []
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => accepted.push(s))
  server.maxConnections = 1
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const port = (server.address() as net.AddressInfo).port
  const sender = net.connect(port, '127.0.0.1')
  sender.on('error', () => {})
  for (let i = 0; i < 100 && accepted.length === 0; i++) await new Promise((r) => setTimeout(r, 20))
  const fresh = withPooledReads(accepted[0]!)
  t.not(fresh, accepted[0], 'a new socket on the same connection')
  t.ok(accepted[0]!.destroyed, 'the old one is done with')
  t.equal(withPooledReads(fresh), fresh, 'moved once')
  t.equal(fresh.remoteAddress, '127.0.0.1', 'it knows its peer')
  // A second connection while the first lives is turned away by maxConnections, as before.
  const second = net.connect(port, '127.0.0.1')
  second.on('error', () => {})
  await new Promise((r) => setTimeout(r, 200))
  t.equal(accepted.length, 1, 'the listener still counts the moved connection')
  second.destroy()
  const p = await pair()
  t.teardown(() => p.close())
  pooledReaderOf(fresh)!.relayTo(p.near)
  sender.end(payload)
  const got = await drain(p.far, 0, 0)
  t.equal(sha(got), sha(payload), 'every byte, then the FIN')
  fresh.destroy()
  p.near.destroy()
  await once(fresh, 'close')
  const third = net.connect(port, '127.0.0.1')
  third.on('error', () => {})
  for (let i = 0; i < 100 && accepted.length < 2; i++) await new Promise((r) => setTimeout(r, 20))
  t.equal(accepted.length, 2, 'once it closed, the listener takes the next')
  third.destroy()
  for (const s of accepted) s.destroy()
})

t.test('a socket that was read already is left as it is', async (t) => {
  const server = net.createServer((s) => s.end('hello'))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  await once(c, 'data')
  t.equal(withPooledReads(c), c, 'reading started: not moved')
  c.destroy()
})

t.test('a lease waiting for its client holds small buffers, not pooled ones', async (t) => {
  const src = await source(randomBytes(1024 * 1024))
  t.teardown(() => src.close())
  const before = process.memoryUsage().arrayBuffers
  const waiting = await Promise.all(Array.from({ length: 40 }, () => connectTo('127.0.0.1', src.port, undefined, 5000, true)))
  await new Promise((r) => setTimeout(r, 300))
  const held = process.memoryUsage().arrayBuffers - before
  // 40 x 2 x 16 KiB = 1.25 MiB; one pooled buffer each would be 10 MiB.
  t.ok(held < 4 * 1024 * 1024, `40 waiting legs hold ${(held / 1024).toFixed(0)} KiB`)
  for (const s of waiting) s.destroy()
})

t.test('many transfers whose clients do not read hold at most 64 pooled buffers between them, and give every one back', async (t) => {
  const src = await source(randomBytes(8 * 1024 * 1024))
  t.teardown(() => src.close())
  const legs = await Promise.all(
    Array.from({ length: 48 }, async () => {
      const up = await connectTo('127.0.0.1', src.port, undefined, 5000, true)
      const p = await pair()
      p.far.pause()
      pooledReaderOf(up)!.relayTo(p.near)
      return { up, p }
    }),
  )
  await new Promise((r) => setTimeout(r, 1000))
  // 48 transfers x 3 pooled buffers (two in flight, one armed) would be 144; past 64, small ones.
  t.ok(pooledBuffersOutstanding() <= 64 && pooledBuffersOutstanding() >= 32, `${pooledBuffersOutstanding()} pooled buffers out`)
  for (const { up, p } of legs) {
    up.destroy()
    p.near.destroy()
    p.far.destroy()
    p.close()
  }
  for (let i = 0; i < 50 && pooledBuffersOutstanding() > 0; i++) await new Promise((r) => setTimeout(r, 20))
  t.equal(pooledBuffersOutstanding(), 0, 'every pooled buffer given back once the sockets closed')
})
