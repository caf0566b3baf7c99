// Issue 8, finding 5: pool ports listened before anyone handled them. Between the bind and the
// lease's constructor (while the server's data port is dialled, up to twice the connect timeout)
// a connection to the pool port, from a port scanner say, was accepted and never destroyed; with
// maxConnections = 1 the real client's data connection was then dropped. The fixed proxy attaches
// the pool port's handler before it listens: such a connection is destroyed at once, and the real
// client's data connection still works.
//
// A server data port that is slow to accept, made for real: the FTP server's data listener runs in
// a child process (backlog 1) whose event loop the test blocks for 2.8 s after filling its accept
// queue with two connections of its own. The kernel drops the proxy's SYN while the queue is full,
// so the proxy's dial hangs until the SYN is sent again (1 s, then 3 s after the first); the 227
// reaches the client only after the child accepts again. The scan runs inside that window.
// Ports: 27260-27279 (the child's listener takes port 0).
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp, type RawReply } from '../fixtures/raw-ftp.js'
import { assertReleased, baseline, endsClean, sha, sleep, startFaultServer, waitFor } from './helpers.js'

t.setTimeout(120_000)
const SMALL = randomBytes(200_000)
// The file the slow data port serves: small enough to sit in loopback's kernel buffers whole, so
// the child's write finishes even while the proxy does not read its leg yet.
const PAYLOAD = randomBytes(48_000)
const POOL = { min: 27270, max: 27279 }
const BLOCK_MS = 2800

// The slow data listener. Commands on stdin: "block" blocks its event loop for argv[2] ms (nothing
// is accepted meanwhile). Each connection accepted is sent the payload file and ended; "sent
// <peer port>" says its last byte reached the kernel.
const CHILD = `
const net = require('node:net')
const fs = require('node:fs')
const payload = fs.readFileSync(process.argv[1])
const blockMs = Number(process.argv[2])
const server = net.createServer((s) => {
  s.on('error', () => {})
  const peer = s.remotePort
  s.end(payload, () => process.stdout.write('sent ' + peer + '\\n'))
})
server.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => process.stdout.write('port ' + server.address().port + '\\n'))
process.stdin.on('data', (d) => {
  if (!String(d).includes('block')) return
  process.stdout.write('blocking\\n')
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, blockMs)
  process.stdout.write('unblocked\\n')
})
process.stdin.on('end', () => process.exit(0))
`

interface SlowDataPort {
  port: number
  lines: string[]
  /** Blocks the child's event loop for BLOCK_MS; resolves once it is blocked. */
  block(): Promise<void>
  stop(): void
}

async function startSlowDataPort(dir: string): Promise<SlowDataPort> {
  const file = join(dir, 'payload.bin')
  await writeFile(file, PAYLOAD)
  const child = spawn(process.execPath, ['-e', CHILD, file, String(BLOCK_MS)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines: string[] = []
  let partial = ''
  child.stdout.on('data', (b: Buffer) => {
    const parts = (partial + b.toString()).split('\n')
    partial = parts.pop() ?? ''
    lines.push(...parts)
  })
  const started = await waitFor(() => lines.some((l) => l.startsWith('port ')), 10_000)
  if (!started) {
    child.kill('SIGKILL')
    throw new Error('the slow data listener did not start')
  }
  const port = Number(lines.find((l) => l.startsWith('port '))!.slice(5))
  return {
    port,
    lines,
    block: async () => {
      const before = lines.filter((l) => l === 'blocking').length
      child.stdin.write('block\n')
      await waitFor(() => lines.filter((l) => l === 'blocking').length > before, 5000)
    },
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    },
  }
}

function connectOnce(port: number, ms: number): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port })
    s.on('error', () => {})
    const timer = setTimeout(() => {
      s.destroy()
      resolve(null)
    }, ms)
    s.once('connect', () => {
      clearTimeout(timer)
      resolve(s)
    })
    s.once('close', () => {
      clearTimeout(timer)
      resolve(null)
    })
  })
}

/** How one scanned port answered: refused, or accepted and then closed within the watch, or held open. */
type ScanResult = { port: number; outcome: 'refused' | 'closed' | 'held'; socket: net.Socket | null }

/** Connects once to every port of the pool and watches each accepted connection for `watchMs`. */
async function scanPool(watchMs: number): Promise<ScanResult[]> {
  const ports = Array.from({ length: POOL.max - POOL.min + 1 }, (_, i) => POOL.min + i)
  return Promise.all(
    ports.map(
      (port) =>
        new Promise<ScanResult>((resolve) => {
          const s = net.connect({ host: '127.0.0.1', port })
          s.on('error', () => {})
          // The scanner never sends a byte and never reads one it does not get: a port that keeps
          // the connection open past the watch holds it.
          let connected = false
          s.once('connect', () => {
            connected = true
            setTimeout(() => resolve({ port, outcome: s.destroyed ? 'closed' : 'held', socket: s }), watchMs)
          })
          s.once('close', () => {
            if (!connected) resolve({ port, outcome: 'refused', socket: null })
          })
          // A port that neither accepts nor refuses within the watch (it cannot happen on loopback).
          setTimeout(() => {
            if (!connected) {
              s.destroy()
              resolve({ port, outcome: 'refused', socket: null })
            }
          }, watchMs + 2000)
          s.on('end', () => s.destroy())
        }),
    ),
  )
}

/** Reads a data connection to its end or its error, within `ms`. */
function readData(host: string, port: number, ms: number): Promise<{ bytes: Buffer; error: string | null }> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port })
    const chunks: Buffer[] = []
    let error: string | null = null
    const timer = setTimeout(() => {
      error ??= `no end within ${ms} ms`
      s.destroy()
    }, ms)
    s.on('data', (c: Buffer) => chunks.push(c))
    s.on('error', (e: NodeJS.ErrnoException) => (error ??= e.code ?? e.message))
    s.once('close', () => {
      clearTimeout(timer)
      resolve({ bytes: Buffer.concat(chunks), error })
    })
  })
}

t.test('a pool port scanned while the server data port is being dialled: the scan is not held, the client still transfers', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'hostile-pool-listen-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const slow = await startSlowDataPort(dir)
  t.teardown(() => slow.stop())
  const fillers: net.Socket[] = []
  t.teardown(() => {
    for (const s of fillers) s.destroy()
  })

  let slowMode = false
  let blockedAt = 0
  let queueFull = false
  const server = await startFaultServer({
    port: 27260,
    files: { 'small.bin': SMALL },
    onCommand: async (cmd, s) => {
      if (!slowMode) return 'default'
      if (cmd.verb === 'PASV') {
        // Block the data listener, fill its accept queue (backlog 1: two connections), check that
        // a third is not accepted, then name it in the 227.
        await slow.block()
        blockedAt = Date.now()
        for (let i = 0; i < 2; i++) {
          const f = await connectOnce(slow.port, 1000)
          if (f !== null) fillers.push(f)
        }
        const extra = await connectOnce(slow.port, 300)
        queueFull = fillers.length === 2 && extra === null
        extra?.destroy()
        s.write(`227 Entering Passive Mode (127,0,0,1,${slow.port >> 8},${slow.port & 255}).`)
        return undefined
      }
      if (cmd.verb === 'RETR') {
        s.write('150 Opening BINARY mode data connection.')
        // The proxy's connection is the one that is not a filler; its payload is in the kernel.
        const mine = new Set(fillers.map((f) => String(f.localPort)))
        const sent = await waitFor(() => slow.lines.some((l) => l.startsWith('sent ') && !mine.has(l.slice(5))), 10_000)
        s.write(sent ? '226 Transfer complete.' : '426 Transfer aborted: nobody connected to the data port.')
        return undefined
      }
      return 'default'
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy([
    '--upstream', `127.0.0.1:${server.port}`,
    '--passive-ports', `${POOL.min}-${POOL.max}`,
    // The dial waits for the SYN sent again 3 s after the first; a 425 after 5 s would hide the finding.
    '--connect-timeout', '15s',
    // Bounds the pre-fix failure: a lease that never sees its client answers 425 after this.
    '--data-accept-timeout', '5s',
  ])
  t.teardown(() => p.close())
  const fds = await baseline(t, p, 'small.bin', SMALL)

  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login()
  slowMode = true
  const pasvAt = Date.now()
  c.socket.write('PASV\r\n')
  let pasv: RawReply | null = null
  let pasvAnswered = 0
  void c.reply(30_000).then(
    (r) => {
      pasv = r
      pasvAnswered = Date.now()
    },
    () => {
      pasvAnswered = Date.now()
    },
  )

  // Scan while the proxy is dialling: rounds every 300 ms from 300 ms after the block, each round
  // watched for 1 s, the last watch over before the data listener can accept again (so no scanner
  // connection can arrive after the 227, when a connection from the client's address is the
  // client's to claim). Pre-fix, the proxy holds its pool port from the start of the dial.
  t.ok(await waitFor(() => blockedAt > 0 && server.commands.at(-1) === 'PASV', 5000), 'the server got the PASV')
  const rounds: Array<Promise<ScanResult[]>> = []
  const scanStarted = Date.now()
  for (let i = 0; i < 6 && Date.now() - blockedAt < BLOCK_MS - 1300; i++) {
    await sleep(Math.max(0, blockedAt + 300 * (i + 1) - Date.now()))
    rounds.push(scanPool(1000))
  }
  const scan = (await Promise.all(rounds)).flat()
  const scanEnded = Date.now()
  t.teardown(() => {
    for (const r of scan) r.socket?.destroy()
  })
  t.ok(queueFull, "setup: the server's data port accepted nothing more while blocked (accept queue full)")
  t.ok(rounds.length >= 2, `setup: ${rounds.length} scan rounds ran while the proxy was dialling`)
  t.ok(pasvAnswered === 0 || pasvAnswered > scanEnded, `setup: the scan ran before the client had its 227 (${scanStarted - blockedAt}-${scanEnded - blockedAt} ms after the block)`)

  const held = scan.filter((r) => r.outcome === 'held')
  t.same(
    held.map((r) => r.port),
    [],
    `no scanner connection is held open by a pool port (${scan.length} connections: ${(['refused', 'closed', 'held'] as const).map((o) => `${scan.filter((r) => r.outcome === o).length} ${o}`).join(', ')})`,
  )

  // The real client: its 227 comes once the server's data port accepts again; its data
  // connection must work, whatever the scanner did (its held sockets stay open meanwhile).
  await waitFor(() => pasvAnswered > 0, 20_000)
  const reply = pasv as RawReply | null
  t.equal(reply?.code, 227, `the client's PASV is answered 227 (${reply?.text ?? 'no reply'})`)
  t.ok(pasvAnswered - pasvAt >= 1000, `setup: the 227 came only after the slow dial (${pasvAnswered - pasvAt} ms)`)
  if (reply?.code === 227) {
    const ep = pasvEndpoint(reply.text)
    const data = readData(ep.host, ep.port, 15_000)
    const retr = await c.cmd('RETR small.bin').catch((e: Error) => ({ code: 0, text: e.message }))
    const got = await data
    t.equal(retr.code, 226, `RETR answered 226 (${retr.text})`)
    t.equal(got.error, null, 'the data connection was not refused or reset')
    t.equal(sha(got.bytes), sha(PAYLOAD), `the client got every byte (sha256; ${got.bytes.length} of ${PAYLOAD.length} bytes)`)
  }
  slowMode = false
  await c.cmd('QUIT').catch(() => null)
  c.close()
  for (const r of scan) r.socket?.destroy()
  for (const f of fillers) f.destroy()
  await waitFor(() => p.proxy.sessionCount === 0, 5000)
  await sleep(100)
  await assertReleased(t, p, fds, 'after the scan')
  await endsClean(t, p, fds, 'small.bin', SMALL)
})
