// What moved on a lease's two data legs: bytes counted into the metrics once a second while they
// flow (so a long transfer shows as throughput, not one step at its end; socket.bytesRead costs
// nothing on the data path), and --data-idle-timeout: no byte moved on either leg that long.

import type net from 'node:net'
import type { ProxyMetrics } from '../observe/metrics.js'

export interface MeteredLegs {
  readonly client: net.Socket | null
  readonly upstream: net.Socket | null
}

export interface DataMeterOptions {
  readonly metrics: ProxyMetrics
  /** --data-idle-timeout. */
  readonly idleTimeoutMs: number
  /** No byte moved on either leg for idleTimeoutMs. */
  readonly onIdle: () => void
}

export class DataMeter {
  readonly #legs: () => MeteredLegs
  readonly #opts: DataMeterOptions
  #timer: NodeJS.Timeout | null = null
  #counted = { download: 0, upload: 0 }
  /** Bytes moved on both legs at the last check, and when that count last changed. */
  #moved = 0
  #movedAt = 0

  constructor(legs: () => MeteredLegs, opts: DataMeterOptions) {
    this.#legs = legs
    this.#opts = opts
  }

  /** Bytes carried so far: download is what the server sent, upload what the client sent. */
  get bytes(): { download: number; upload: number } {
    const { client, upstream } = this.#legs()
    return { download: upstream?.bytesRead ?? 0, upload: client?.bytesRead ?? 0 }
  }

  /** Starts counting (the relay has both legs). */
  start(): void {
    this.#movedAt = performance.now()
    this.#timer = setInterval(() => {
      this.count()
      this.#checkIdle()
    }, 1000)
    this.#timer.unref()
  }

  /** Adds what moved since the last count to the metrics. */
  count(): void {
    const { download, upload } = this.bytes
    this.#opts.metrics.dataBytes.inc({ direction: 'download' }, download - this.#counted.download)
    this.#opts.metrics.dataBytes.inc({ direction: 'upload' }, upload - this.#counted.upload)
    this.#counted = { download, upload }
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }

  /**
   * No byte moved on either leg (a peer that neither sends nor reads, a dead path), or the data
   * is relayed and the server's final reply does not come. Bytes handed to the kernel count as
   * moved: a slow reader that drains its window keeps the relay alive.
   */
  #checkIdle(): void {
    const { client: c, upstream: u } = this.#legs()
    const moved = (c?.bytesRead ?? 0) + (c?.bytesWritten ?? 0) + (u?.bytesRead ?? 0) + (u?.bytesWritten ?? 0)
    const now = performance.now()
    if (moved !== this.#moved) {
      this.#moved = moved
      this.#movedAt = now
      return
    }
    if (now - this.#movedAt >= this.#opts.idleTimeoutMs) this.#opts.onIdle()
  }
}
