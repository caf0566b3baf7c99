// What a data lease is given (transfer.ts): its port, its server leg, who may connect, its
// timeouts, its protection, and whom to tell when it ends.

import type net from 'node:net'
import type { Logger } from 'pino'
import type { PortLease } from '../net/port-pool.js'
import type { ProxyMetrics } from '../observe/metrics.js'
import type { DataTls } from './data-tls.js'
import type { LeaseOutcome } from './outcomes.js'
import type { DataLease } from './transfer.js'

export interface DataLeaseOptions {
  readonly id: number
  /**
   * The pool port: the client connects to it (passive), or the server does (relay); null when
   * the proxy dials the client itself (active mode made passive toward the server).
   */
  readonly port: PortLease | null
  /** The server leg, dialled before the lease; null in relay mode, where the server connects in. */
  readonly upstream: net.Socket | null
  /** Relay mode: the server's address (the only one accepted on the port) and where to dial the client. */
  readonly relay?: {
    readonly serverAddress: string
    readonly client: { readonly host: string; readonly port: number; readonly localAddress: string; readonly timeoutMs: number }
  }
  /** The control client's IP: the only address allowed to connect (RFC 2577 port stealing). */
  readonly clientAddress: string
  readonly acceptTimeoutMs: number
  /** No byte moved on either leg this long, or no final reply this long after the data: failed{data_idle}. */
  readonly dataIdleTimeoutMs: number
  /** After a finished transfer, how long the client's leg may stay open before it is destroyed. */
  readonly closeTimeoutMs: number
  readonly metrics: ProxyMetrics
  readonly log: Logger
  /** Protected data connections (PROT P on either side); absent: clear both ways. */
  readonly tls?: DataTls
  /** Called once when the lease ends. */
  readonly onEnd: (lease: DataLease, outcome: LeaseOutcome) => void
}

/** How the data carried by a lease went, for the 226 held back until the client leg drained. */
export type DrainResult = 'ok' | 'failed' | 'not_connected'
