// Every clock of a control session, stopped in one place: the idle timeout (--idle-timeout,
// waiting while a transfer runs), the greeting deadline (--greeting-timeout: a server that
// accepts and says nothing), and the close deadline (--close-timeout: once a final reply is on
// its way or the server has gone, the client leg is destroyed by then whatever the client does).

import type { Config } from '../config-types.js'
import { IdleClock } from './idle-clock.js'

export interface SessionClocksOptions {
  /** The config now (it may be reloaded). */
  readonly config: () => Config
  /** Whether a transfer runs: the idle clock waits. */
  readonly busy: () => boolean
  readonly onIdle: (timeoutMs: number) => void
  /** The greeting deadline passed; the callee checks whether the greeting came. */
  readonly onGreetingDeadline: (timeoutMs: number) => void
  readonly onCloseDeadline: () => void
}

export class SessionClocks {
  readonly #opts: SessionClocksOptions
  readonly #idle: IdleClock
  #greeting: NodeJS.Timeout | null = null
  #closing: NodeJS.Timeout | null = null

  constructor(opts: SessionClocksOptions) {
    this.#opts = opts
    this.#idle = new IdleClock({ timeoutMs: () => opts.config().idleTimeoutMs, busy: opts.busy, onIdle: opts.onIdle })
  }

  /** The session starts: the greeting deadline runs. */
  start(): void {
    const ms = this.#opts.config().greetingTimeoutMs
    this.#greeting = setTimeout(() => this.#opts.onGreetingDeadline(ms), ms)
    this.#greeting.unref()
  }

  /** Something happened on the control connection: the idle time counts from now. */
  activity(): void {
    this.#idle.mark()
  }

  /** The session is ending: the close deadline runs from the first call. */
  armClose(): void {
    this.#closing ??= setTimeout(() => this.#opts.onCloseDeadline(), this.#opts.config().closeTimeoutMs)
  }

  stop(): void {
    this.#idle.stop()
    for (const timer of [this.#greeting, this.#closing]) if (timer !== null) clearTimeout(timer)
  }
}
