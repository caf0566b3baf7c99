// A control session's life, in one place: open, then ending (a final reply is on its way, or the
// server left and its last replies are), then closed (both legs closed). It also keeps the one
// reason the session ends for: the first cause that is known wins, whoever reports it later.

export type Phase = 'open' | 'ending' | 'closed'

export class Lifecycle {
  #phase: Phase = 'open'
  #reason: string | null = null
  #quit = false
  #clientEnded = false
  #legsClosed = 0

  get phase(): Phase {
    return this.#phase
  }

  get reason(): string | null {
    return this.#reason
  }

  /** Records why the session ends, unless a cause is known already. */
  because(reason: string): void {
    this.#reason ??= reason
  }

  /** The client sent QUIT: the server leaving next is the client's doing. */
  quit(): void {
    this.#quit = true
  }

  /** The client sent its FIN (passed on to the server after the commands before it). */
  clientEnded(): void {
    this.#clientEnded = true
  }

  get clientHasEnded(): boolean {
    return this.#clientEnded
  }

  /** The server left (its FIN, or its leg closed): after a QUIT or the client's own FIN, the client's doing. */
  serverLeft(): void {
    this.because(this.#quit ? 'client quit' : this.#clientEnded ? 'client closed the connection' : 'server closed the connection')
  }

  /** The client's leg closed. */
  clientClosed(): void {
    this.because(this.#quit ? 'client quit' : 'client closed the connection')
  }

  /** open -> ending; false when the session was no longer open. */
  end(): boolean {
    if (this.#phase !== 'open') return false
    this.#phase = 'ending'
    return true
  }

  /** One leg closed; true when that was the second, and the session is closed now. */
  legClosed(): boolean {
    this.#legsClosed++
    if (this.#legsClosed < 2) return false
    this.#phase = 'closed'
    return true
  }
}
