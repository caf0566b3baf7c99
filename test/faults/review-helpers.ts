// Helpers shared by the review-*.test.ts files (regression tests for the defects a hostile review
// found in 5f3b1bf~1 and 5f3b1bf fixed). Not a test file: tap runs only *.test.ts.
import net from 'node:net'
import { Worker } from 'node:worker_threads'
import type { FaultCommand, FaultHook, FaultSession } from './helpers.js'

/**
 * RETR the way vsftpd sends a file: the data written, the descriptor closed (the kernel sends the
 * rest and the FIN), then 226, without waiting for the client's side of the data connection to
 * close. The fault server's own RETR waits for the data connection's 'close', which a client that
 * keeps its data socket open never brings. Other commands go to the fault server's defaults.
 */
export function retrLikeVsftpd(files: Record<string, Buffer>): FaultHook {
  return async (cmd: FaultCommand, s: FaultSession) => {
    if (cmd.verb !== 'RETR') return 'default'
    const file = files[cmd.arg]
    if (file === undefined) return void s.write('550 No such file.')
    const data = await s.dataSocket()
    if (data === null) return void s.write("425 Can't open data connection.")
    s.write('150 Opening BINARY mode data connection.')
    await new Promise<void>((resolve) => {
      data.once('close', () => resolve())
      data.end(file, () => resolve())
    })
    const finished = data.writableFinished
    data.destroy()
    s.dropData()
    s.write(finished ? '226 Transfer complete.' : '426 Connection closed; transfer aborted.')
    return undefined
  }
}

export interface DataRead {
  readonly bytes: Buffer
  /** The connection's error code (ECONNREFUSED, ECONNRESET), or a timeout; null after a clean end. */
  readonly error: string | null
}

/** Connects and reads to the end or the first error, within `ms`; the socket is destroyed after. */
export function readData(host: string, port: number, ms = 10_000): Promise<DataRead> {
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
    s.on('end', () => s.destroy())
    s.once('close', () => {
      clearTimeout(timer)
      resolve({ bytes: Buffer.concat(chunks), error })
    })
  })
}

/** Log lines of `level` (pino's number: 40 warn, 30 info, 20 debug) whose msg is `msg`. */
export function logLines(logs: ReadonlyArray<Record<string, unknown>>, level: number, msg: string): number {
  return logs.filter((l) => l['level'] === level && l['msg'] === msg).length
}

/**
 * A TCP listener that stops accepting on request, for a connect that hangs: its accept queue
 * (backlog 1: two connections) is filled while the thread that would accept is blocked, and the
 * kernel then drops every further SYN until the queue has room again (the connecting side sends
 * its SYN again after 1, 3, 7, 15 s). It runs in a worker thread whose event loop `block()` stops
 * (Atomics.wait) and `release()` starts again; connections it accepts are kept, never read.
 */
export interface BlockedListener {
  readonly port: number
  /** Connections the listener has accepted so far. */
  readonly accepted: number
  /** Stops accepting and fills the accept queue; true once a further connect is seen to hang. */
  block(): Promise<boolean>
  /** Accepts again (the fillers are closed); whatever waits in the queue is accepted. */
  release(): void
  close(): Promise<void>
}

const BLOCKED_LISTENER = `
const { parentPort, workerData } = require('node:worker_threads')
const net = require('node:net')
const flag = new Int32Array(workerData.shared)
const held = []
const server = net.createServer((s) => {
  s.on('error', () => {})
  held.push(s)
  parentPort.postMessage({ type: 'accepted' })
})
server.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => parentPort.postMessage({ type: 'port', port: server.address().port }))
parentPort.on('message', (m) => {
  if (m === 'block') {
    parentPort.postMessage({ type: 'blocking' })
    // Bounded: a test that forgets to release must not leave the thread blocked for ever.
    Atomics.wait(flag, 0, 0, workerData.maxBlockMs)
    Atomics.store(flag, 0, 0)
  } else if (m === 'close') {
    for (const s of held) s.destroy()
    server.close(() => parentPort.close())
  }
})
`

function connectWithin(port: number, ms: number): Promise<net.Socket | null> {
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

export async function startBlockedListener(maxBlockMs = 60_000): Promise<BlockedListener> {
  const shared = new SharedArrayBuffer(4)
  const flag = new Int32Array(shared)
  // No execArgv: the test runner's loaders have nothing to do in this thread.
  const worker = new Worker(BLOCKED_LISTENER, { eval: true, workerData: { shared, maxBlockMs }, execArgv: [] })
  let accepted = 0
  let blocking = 0
  let port = 0
  worker.on('message', (m: { type: string; port?: number }) => {
    if (m.type === 'accepted') accepted++
    else if (m.type === 'blocking') blocking++
    else if (m.type === 'port') port = m.port ?? 0
  })
  worker.on('error', () => {})
  const deadline = Date.now() + 10_000
  while (port === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  if (port === 0) {
    await worker.terminate()
    throw new Error('the blocked listener did not start')
  }
  const fillers: net.Socket[] = []
  return {
    port,
    get accepted() {
      return accepted
    },
    block: async () => {
      const before = blocking
      worker.postMessage('block')
      const until = Date.now() + 5000
      while (blocking === before && Date.now() < until) await new Promise((r) => setTimeout(r, 10))
      for (let i = 0; i < 2; i++) {
        const f = await connectWithin(port, 1000)
        if (f !== null) fillers.push(f)
      }
      const extra = await connectWithin(port, 300)
      extra?.destroy()
      return fillers.length === 2 && extra === null
    },
    release: () => {
      Atomics.store(flag, 0, 1)
      Atomics.notify(flag, 0)
      for (const f of fillers.splice(0)) f.destroy()
    },
    close: async () => {
      Atomics.store(flag, 0, 1)
      Atomics.notify(flag, 0)
      for (const f of fillers.splice(0)) f.destroy()
      worker.postMessage('close')
      await Promise.race([new Promise((r) => worker.once('exit', r)), new Promise((r) => setTimeout(r, 2000))])
      await worker.terminate()
    },
  }
}
