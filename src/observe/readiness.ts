// Readiness: whether the upstream FTP server's control port answers. Ready while the last
// connect to it (a client session's, or a bare TCP connect made when no session has connected
// for PROBE_EVERY_MS) succeeded and is under MAX_AGE_MS old; a failed connect makes the proxy
// unready at once. The probe never logs in: it connects and closes (the server logs a connect).

import net from 'node:net'
import type { Endpoint } from '../config-types.js'

export const PROBE_EVERY_MS = 20_000
export const MAX_AGE_MS = 60_000

export interface ConnectResult {
  readonly ok: boolean
  readonly at: number
  readonly error?: string
}

export class UpstreamReadiness {
  readonly #upstream: () => Endpoint
  readonly #timeoutMs: () => number
  #last: ConnectResult | null = null
  #lastAttempt = 0
  #timer: NodeJS.Timeout | null = null
  #probing = false

  constructor(upstream: () => Endpoint, timeoutMs: () => number) {
    this.#upstream = upstream
    this.#timeoutMs = timeoutMs
  }

  /** Records the result of any connect to the upstream control port. */
  record(ok: boolean, error?: string): void {
    const now = Date.now()
    this.#last = error === undefined ? { ok, at: now } : { ok, at: now, error }
    this.#lastAttempt = now
  }

  get last(): ConnectResult | null {
    return this.#last
  }

  ready(now = Date.now()): boolean {
    return this.#last !== null && this.#last.ok && now - this.#last.at < MAX_AGE_MS
  }

  /** Why the proxy is not ready, in words, or null when it is. */
  reason(now = Date.now()): string | null {
    const last = this.#last
    if (last === null) return 'no connect to the FTP server yet'
    const age = Math.round((now - last.at) / 1000)
    if (!last.ok) return `the last connect to the FTP server failed ${age} s ago: ${last.error ?? 'error'}`
    if (now - last.at >= MAX_AGE_MS) return `the last connect to the FTP server is ${age} s old`
    return null
  }

  /** Starts the probe: one connect now, then one whenever no connect was made for PROBE_EVERY_MS. */
  start(): void {
    if (this.#timer !== null) return
    void this.#probe()
    this.#timer = setInterval(() => {
      if (Date.now() - this.#lastAttempt >= PROBE_EVERY_MS) void this.#probe()
    }, 1000)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }

  async #probe(): Promise<void> {
    if (this.#probing) return
    this.#probing = true
    this.#lastAttempt = Date.now()
    const { host, port } = this.#upstream()
    try {
      await new Promise<void>((resolve, reject) => {
        const socket = net.connect({ host, port })
        const timer = setTimeout(() => socket.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })), this.#timeoutMs())
        socket.once('connect', () => {
          clearTimeout(timer)
          socket.destroy()
          resolve()
        })
        socket.once('error', (err) => {
          clearTimeout(timer)
          reject(err)
        })
      })
      this.record(true)
    } catch (err) {
      this.record(false, (err as NodeJS.ErrnoException).code ?? (err as Error).message)
    } finally {
      this.#probing = false
    }
  }
}
