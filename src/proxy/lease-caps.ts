// The caps on data connections: --max-leases-per-session for one session, and
// --max-leases-per-client for every session from one client address (an IPv6 client by its
// --client-ipv6-prefix), so that no session, and no client with many sessions, holds the pool.

import type { SessionContext, SessionEndpoints } from './session-context.js'

export class LeaseCaps {
  readonly #shared: SessionContext
  readonly #clientKey: string
  /** Leases this session holds, and is setting up. */
  #held = 0

  constructor(shared: SessionContext, endpoints: SessionEndpoints) {
    this.#shared = shared
    this.#clientKey = endpoints.clientKey
  }

  /** Takes a place for a lease under both caps; or, when one is full, says which (for a 425). */
  take(): string | null {
    const config = this.#shared.config()
    if (this.#held >= config.maxLeasesPerSession) {
      return `this session already holds ${config.maxLeasesPerSession} data connections (--max-leases-per-session)`
    }
    const byClient = this.#shared.clientLeases
    const held = byClient.get(this.#clientKey) ?? 0
    if (held >= config.maxLeasesPerClient) {
      return `your address already holds ${config.maxLeasesPerClient} data connections (--max-leases-per-client)`
    }
    this.#held++
    byClient.set(this.#clientKey, held + 1)
    return null
  }

  /** Gives back a place taken by take(). */
  give(): void {
    this.#held--
    const byClient = this.#shared.clientLeases
    const n = (byClient.get(this.#clientKey) ?? 1) - 1
    if (n <= 0) byClient.delete(this.#clientKey)
    else byClient.set(this.#clientKey, n)
  }
}
