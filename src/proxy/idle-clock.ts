// The idle timeout of a control connection: one timer per session, re-armed only when it fires
// early, so that a client sending thousands of commands a second costs no timer each. It counts
// only while no transfer runs: a long transfer keeps the control connection silent for as long
// as it takes.

export interface IdleClockOptions {
  /** The timeout now (the config may be reloaded). */
  readonly timeoutMs: () => number
  /** Whether a transfer runs: the clock waits, re-checking once per timeout. */
  readonly busy: () => boolean
  readonly onIdle: (timeoutMs: number) => void
}

export class IdleClock {
  readonly #opts: IdleClockOptions
  #timer: NodeJS.Timeout | null = null
  #lastActivity = performance.now()
  #stopped = false

  constructor(opts: IdleClockOptions) {
    this.#opts = opts
  }

  /** Something happened: the idle time counts from now. */
  mark(): void {
    this.#lastActivity = performance.now()
    if (this.#timer === null && !this.#stopped) this.#schedule(this.#opts.timeoutMs())
  }

  stop(): void {
    this.#stopped = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  #schedule(inMs: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = null
      if (this.#stopped) return
      const ms = this.#opts.timeoutMs()
      const quiet = performance.now() - this.#lastActivity
      if (this.#opts.busy()) return this.#schedule(ms)
      if (quiet < ms) return this.#schedule(ms - quiet)
      this.#opts.onIdle(ms)
    }, inMs)
    this.#timer.unref()
  }
}
