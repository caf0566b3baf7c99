// Live updates of the status page: server-sent events on /status/events (the WHATWG HTML
// standard's text/event-stream). Bounded: at most MAX_STREAMS held at once (one more gets 503,
// and the page falls back to polling /status.json); a stream whose reader falls behind by
// MAX_BUFFERED_BYTES is closed; one snapshot per tick is shared by every stream, and sent only
// when it changed; a comment line keeps idle streams from being cut by intermediaries.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { StatusSnapshot } from './status.js'

export const MAX_STREAMS = 8
export const MAX_BUFFERED_BYTES = 1024 * 1024
const TICK_MS = 1_000
const KEEPALIVE_MS = 15_000

export interface StatusStreamOptions {
  readonly snapshot: () => Promise<StatusSnapshot>
  /** Headers every response carries (the CSP and friends of http.ts). */
  readonly headers: Readonly<Record<string, string>>
  /** Whether the page is still on (a reload may turn it off): streams end when it is not. */
  readonly enabled: () => boolean
  readonly maxStreams?: number
  readonly maxBufferedBytes?: number
  readonly tickMs?: number
}

export class StatusStream {
  readonly #opts: StatusStreamOptions
  readonly #streams = new Set<ServerResponse>()
  #timer: NodeJS.Timeout | null = null
  #last = ''
  #lastSentAt = 0
  #busy = false

  constructor(opts: StatusStreamOptions) {
    this.#opts = opts
  }

  get size(): number {
    return this.#streams.size
  }

  /** Serves one GET /status/events: the current snapshot at once, then each change. */
  open(req: IncomingMessage, res: ServerResponse): void {
    if (this.#streams.size >= (this.#opts.maxStreams ?? MAX_STREAMS)) {
      res
        .writeHead(503, { ...this.#opts.headers, 'content-type': 'text/plain; charset=utf-8', 'retry-after': '30' })
        .end('too many live status streams; poll /status.json instead\n')
      return
    }
    res.writeHead(200, { ...this.#opts.headers, 'content-type': 'text/event-stream; charset=utf-8', 'x-accel-buffering': 'no' })
    // The client's retry delay after a dropped stream (ms).
    res.write('retry: 5000\n\n')
    this.#streams.add(res)
    const drop = (): void => {
      this.#streams.delete(res)
      if (this.#streams.size === 0) this.#stopTimer()
    }
    req.socket.setTimeout(0)
    res.once('close', drop)
    void this.#opts.snapshot().then(
      (s) => this.#send(res, JSON.stringify(s)),
      () => res.destroy(),
    )
    if (this.#timer === null) {
      this.#timer = setInterval(() => void this.tick(), this.#opts.tickMs ?? TICK_MS)
      this.#timer.unref()
    }
  }

  /** One turn: a new snapshot to every stream when it changed, else a keep-alive now and then. */
  async tick(): Promise<void> {
    if (this.#busy || this.#streams.size === 0) return
    if (!this.#opts.enabled()) {
      this.closeAll()
      return
    }
    this.#busy = true
    try {
      const s = await this.#opts.snapshot()
      // What changed, leaving out the clock's own fields.
      const key = JSON.stringify({ ...s, generated_at: null, uptime_seconds: null })
      const now = Date.now()
      if (key !== this.#last) {
        this.#last = key
        this.#lastSentAt = now
        const json = JSON.stringify(s)
        for (const res of this.#streams) this.#send(res, json)
      } else if (now - this.#lastSentAt >= KEEPALIVE_MS) {
        this.#lastSentAt = now
        for (const res of this.#streams) this.#write(res, ': keep-alive\n\n')
      }
    } finally {
      this.#busy = false
    }
  }

  closeAll(): void {
    for (const res of this.#streams) res.end()
    this.#streams.clear()
    this.#stopTimer()
  }

  #send(res: ServerResponse, json: string): void {
    // JSON.stringify escapes every line break inside strings: the event is one data line.
    this.#write(res, `event: status\ndata: ${json}\n\n`)
  }

  #write(res: ServerResponse, text: string): void {
    if (res.destroyed || res.writableEnded) return
    // A reader that does not keep up is cut off rather than buffered for.
    if (res.writableLength > (this.#opts.maxBufferedBytes ?? MAX_BUFFERED_BYTES)) {
      res.destroy()
      return
    }
    res.write(text)
  }

  #stopTimer(): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    this.#last = ''
  }
}
