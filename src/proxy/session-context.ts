// What a control session is given: what the proxy shares with every session, the addresses of
// this one, and the bounds on what it holds.

import type { Config } from '../config-types.js'
import type { TlsSettings } from '../net/tls.js'
import type { PortPool } from '../net/port-pool.js'
import type { ProxyMetrics } from '../observe/metrics.js'
import type { StatusRecorder } from '../observe/status.js'

/** Bounds on what one session holds; injectable so that tests reach every overflow path. */
export interface SessionLimits {
  /** A reply the proxy reads whole (227/229, a transfer's final reply) longer than this ends the session. */
  readonly maxReplyBytes: number
  /** Commands not yet answered to the client, the proxy's own replies included; past this the client is not read. */
  readonly maxPendingCommands: number
  /** Reply bytes held back for the client (behind a reply being rewritten); past this the server is not read. */
  readonly maxHeldReplyBytes: number
  /** Longest control line, either way; --max-line-length when absent (its floor is 512). */
  readonly maxLineBytes?: number
  /**
   * Commands in a row the proxy refused itself (LPSV, a bounce PORT, AUTH...) before it closes
   * the session: no client needs more, and a flood of them costs the proxy work and memory.
   */
  readonly maxRefusedInRow: number
}

export const DEFAULT_LIMITS: SessionLimits = Object.freeze({
  maxReplyBytes: 64 * 1024,
  maxPendingCommands: 64,
  maxHeldReplyBytes: 256 * 1024,
  maxRefusedInRow: 100,
})

/** What the proxy shares with every session. */
export interface SessionContext {
  readonly config: () => Config
  readonly pool: PortPool
  readonly metrics: ProxyMetrics
  /** Per upstream: the data address that answered last (tried first next time). */
  readonly dataMemory: { lastAnswered: string | null }
  readonly nextLeaseId: () => number
  /** Leases held now per client key (--max-leases-per-client), shared by every session. */
  readonly clientLeases: Map<string, number>
  /** The proxy host's own addresses, never dialled for data by default. */
  readonly ownAddresses: () => ReadonlySet<string>
  /**
   * FTPS now: the proxy's certificate and the checks toward the server, re-read on SIGHUP; a
   * session keeps the settings it started with (absent: no TLS anywhere, as in some tests).
   */
  readonly tls?: () => TlsSettings
  readonly limits?: SessionLimits
  /** The status page's memory: failed data connections and advertised addresses (absent in some tests). */
  readonly status?: StatusRecorder
}

/** The addresses of one session, normalised (no `::ffff:` prefix). */
export interface SessionEndpoints {
  readonly clientAddress: string
  /** What the client counts under for per-client limits (IPv6 grouped by --client-ipv6-prefix). */
  readonly clientKey: string
  readonly clientPort: number
  /** The local address the client dialled: advertised by default, and where pool ports bind. */
  readonly localAddress: string
  /** The server's address as the proxy reached it (the control peer). */
  readonly upstreamAddress: string
  readonly upstreamPort: number
  /** The local address of the upstream control socket: data connections are dialled from it. */
  readonly upstreamLocalAddress: string
  readonly upstreamFamily: 4 | 6
  readonly upstreamLocalPort: number
  /** The client came to an implicit FTPS listener: TLS from its first byte, before the greeting. */
  readonly implicitTls?: boolean
}
