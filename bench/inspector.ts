// DevTools protocol commands to another Node process's inspector (node --inspect), over a
// minimal WebSocket client: the proxy has no GC endpoint, and Node 20 has no WebSocket client
// without --experimental-websocket. The bench uses it for HeapProfiler.collectGarbage (a full
// collection, V8's LowMemoryNotification) and Runtime.getHeapUsage right after it, in one
// session, so that nothing runs in the proxy between the two but what was running anyway.
import { randomBytes } from 'node:crypto'
import net from 'node:net'

/** The inspector's WebSocket URL from the "Debugger listening on ws://..." line node writes to stderr; null until it has. */
export function inspectorUrl(output: string): string | null {
  return /Debugger listening on (ws:\/\/\S+)/.exec(output)?.[1] ?? null
}

/** A masked (RFC 6455 5.3: every client frame is) final text frame. */
function textFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8')
  const mask = randomBytes(4)
  const len = payload.length
  if (len > 0xffff) throw new Error('inspector: command too long for this client')
  const head = len < 126 ? Buffer.from([0x81, 0x80 | len]) : Buffer.from([0x81, 0x80 | 126, len >> 8, len & 0xff])
  const body = Buffer.alloc(len)
  for (let i = 0; i < len; i++) body[i] = payload[i]! ^ mask[i & 3]!
  return Buffer.concat([head, mask, body])
}

export interface InspectorCommand {
  method: string
  params?: Record<string, unknown>
}

/**
 * Sends the commands one after the other, each once the answer to the one before has come (for
 * collectGarbage: once the collection is done), and resolves with their results; rejects on an
 * error reply, a closed connection or after `timeoutMs` for the whole.
 */
export function inspectorCalls(wsUrl: string, commands: readonly InspectorCommand[], timeoutMs = 60_000): Promise<unknown[]> {
  const url = new URL(wsUrl)
  const what = commands.map((c) => c.method).join(', ')
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: url.hostname, port: Number(url.port) })
    const results: unknown[] = []
    let buf = Buffer.alloc(0)
    let upgraded = false
    let settled = false
    const done = (err: Error | null): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      if (err !== null) reject(err)
      else resolve(results)
    }
    const send = (): void => {
      const c = commands[results.length]!
      socket.write(textFrame(JSON.stringify({ id: results.length + 1, method: c.method, params: c.params ?? {} })))
    }
    const timer = setTimeout(() => done(new Error(`inspector: no answer to ${what} within ${timeoutMs} ms`)), timeoutMs)
    socket.on('error', (err) => done(new Error(`inspector: ${err.message}`)))
    socket.on('close', () => done(new Error(`inspector: connection closed before the answers to ${what}`)))
    socket.on('connect', () => {
      socket.write([
        `GET ${url.pathname} HTTP/1.1`,
        `Host: ${url.host}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
        '',
        '',
      ].join('\r\n'))
    })
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n')
        if (end === -1) return
        const status = buf.subarray(0, buf.indexOf('\r\n')).toString('latin1')
        if (!/^HTTP\/1\.1 101 /.test(status)) {
          done(new Error(`inspector: upgrade refused: ${status}`))
          return
        }
        upgraded = true
        buf = buf.subarray(end + 4)
        send()
      }
      // Server frames are unmasked (RFC 6455 5.1); the inspector sends each message in one frame.
      while (buf.length >= 2) {
        const opcode = buf[0]! & 0x0f
        let len = buf[1]! & 0x7f
        let off = 2
        if (len === 126) {
          if (buf.length < 4) return
          len = buf.readUInt16BE(2)
          off = 4
        } else if (len === 127) {
          if (buf.length < 10) return
          len = Number(buf.readBigUInt64BE(2))
          off = 10
        }
        if (buf.length < off + len) return
        const payload = buf.subarray(off, off + len)
        buf = buf.subarray(off + len)
        if (opcode === 0x8) {
          done(new Error(`inspector: closed by the other side before the answers to ${what}`))
          return
        }
        if (opcode !== 0x1) continue
        // Events (no id) and anything else are not answers.
        const msg = JSON.parse(payload.toString('utf8')) as { id?: number; result?: unknown; error?: { message?: string } }
        if (msg.id !== results.length + 1) continue
        if (msg.error !== undefined) {
          done(new Error(`inspector: ${commands[results.length]!.method}: ${msg.error.message ?? JSON.stringify(msg.error)}`))
          return
        }
        results.push(msg.result)
        if (results.length === commands.length) {
          done(null)
          return
        }
        send()
      }
    })
  })
}
